// A local nats-server child process: for kvbm-demo --transport nats when no --nats URL is
// given (started on a free loopback port and stopped with the demo; --faults stops and
// restarts it on the same port, a broker restart), and for the tests and the NATS bench
// (tests/nats_server.hpp: JetStream in a temporary directory, extra arguments, kill).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace kvbm_demo {

/// The nats-server binary: $KVBM_NATS_SERVER, else the first `nats-server` on $PATH,
/// /usr/sbin or /usr/local/sbin; nullopt when there is none.
inline std::optional<std::string> find_nats_server() {
    if (const char* env = std::getenv("KVBM_NATS_SERVER"); env != nullptr && *env != '\0') {
        return std::string(env);
    }
    std::vector<std::string> dirs;
    if (const char* path = std::getenv("PATH"); path != nullptr) {
        std::stringstream ss(path);
        for (std::string d; std::getline(ss, d, ':');) {
            dirs.push_back(d.empty() ? "." : d);
        }
    }
    dirs.insert(dirs.end(), {"/usr/sbin", "/usr/local/sbin", "/usr/bin"});
    for (const auto& d : dirs) {
        const auto p = std::filesystem::path(d) / "nats-server";
        if (::access(p.c_str(), X_OK) == 0) {
            return p.string();
        }
    }
    return std::nullopt;
}

/// A loopback TCP port nobody listens on right now.
inline int free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        throw std::runtime_error("socket() failed");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("bind/getsockname failed");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

/// A nats-server child process on 127.0.0.1, logging (and, with JetStream, storing) in a
/// fresh temporary directory removed with it. Not thread-safe: one owner thread.
class LocalNatsServer {
public:
    /// Starts `binary` (a path, or a name looked up on $PATH) on a free port; `jetstream`
    /// turns JetStream on with its storage in the directory; `extra` are more command-line
    /// arguments (e.g. {"--user", "u", "--pass", "p"}).
    explicit LocalNatsServer(std::string binary, bool jetstream = false, std::vector<std::string> extra = {})
        : m_binary(std::move(binary)), m_jetstream(jetstream), m_extra(std::move(extra)) {
        std::string tmpl = (std::filesystem::temp_directory_path() / "kvbm-nats-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        m_dir = tmpl;
        try {
            for (int attempt = 0; attempt < 5 && m_pid <= 0; ++attempt) {
                m_port = free_loopback_port();
                start_process();
            }
            if (m_pid <= 0) {
                throw std::runtime_error("nats-server (" + m_binary + ") did not start; log:\n" + log());
            }
        } catch (...) {  // the destructor will not run: leave no directory behind
            std::error_code ec;
            std::filesystem::remove_all(m_dir, ec);
            throw;
        }
    }
    LocalNatsServer(const LocalNatsServer&) = delete;
    LocalNatsServer& operator=(const LocalNatsServer&) = delete;
    ~LocalNatsServer() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(m_dir, ec);
    }

    [[nodiscard]] std::string url() const { return "nats://127.0.0.1:" + std::to_string(m_port); }
    [[nodiscard]] int port() const noexcept { return m_port; }
    [[nodiscard]] const std::filesystem::path& dir() const noexcept { return m_dir; }
    [[nodiscard]] bool running() const noexcept { return m_pid > 0; }

    /// Stops gracefully (SIGTERM) and waits for the process.
    void stop() { end(SIGTERM); }
    /// Kills (SIGKILL): a crash, nothing flushed.
    void kill() { end(SIGKILL); }

    /// Starts again on the same port and storage, after a stop or a kill (the port may
    /// linger a moment).
    void restart() {
        stop();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!start_process()) {
            if (std::chrono::steady_clock::now() > deadline) {
                throw std::runtime_error("nats-server did not restart on port " + std::to_string(m_port) + "; log:\n" +
                                         log());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

    /// The server's log so far.
    [[nodiscard]] std::string log() const {
        std::ifstream in(m_dir / "server.log");
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }

private:
    // Starts the process and waits for "Server is ready" in its log; false if it exited.
    bool start_process() {
        const auto log_path = (m_dir / "server.log").string();
        std::filesystem::remove(log_path);
        std::vector<std::string> args{m_binary, "-a", "127.0.0.1", "-p", std::to_string(m_port), "-l", log_path};
        if (m_jetstream) {
            args.insert(args.end(), {"-js", "-sd", (m_dir / "js").string()});
        }
        args.insert(args.end(), m_extra.begin(), m_extra.end());
        std::vector<char*> argv;
        argv.reserve(args.size() + 1);
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        pid_t pid = 0;
        if (::posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
            throw std::runtime_error("cannot run " + m_binary);
        }
        m_pid = pid;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
                m_pid = -1;
                return false;  // e.g. the port was taken meanwhile
            }
            if (log().find("Server is ready") != std::string::npos) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        end(SIGKILL);
        throw std::runtime_error("nats-server not ready after 30 s; log:\n" + log());
    }

    void end(int sig) {
        if (m_pid <= 0) {
            return;
        }
        ::kill(m_pid, sig);
        int status = 0;
        ::waitpid(m_pid, &status, 0);
        m_pid = -1;
    }

    std::string m_binary;
    bool m_jetstream;
    std::vector<std::string> m_extra;
    std::filesystem::path m_dir;
    int m_port = 0;
    pid_t m_pid = -1;
};

}  // namespace kvbm_demo
