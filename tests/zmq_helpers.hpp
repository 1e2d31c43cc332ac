// Test helper for the ZeroMQ tests: loopback endpoints and encoded batches.
#pragma once

#include "index_helpers.hpp"

#include <kvbm/msgpack.hpp>

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace kvbm_test {

using namespace std::chrono_literals;

/// A fresh ipc endpoint in the temp directory (unique per process and call). Its socket
/// file is removed when the process exits (libzmq leaves it behind in some shutdown orders).
inline std::string ipc_endpoint() {
    struct Files {
        std::mutex mutex;
        std::vector<std::filesystem::path> paths;
        ~Files() {
            for (const auto& p : paths) {
                std::error_code ec;
                std::filesystem::remove(p, ec);
            }
        }
    };
    static Files files;
    static std::atomic<int> counter{0};
    const auto path = std::filesystem::temp_directory_path() /
                      ("kvbm-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".sock");
    std::filesystem::remove(path);
    const std::lock_guard lock(files.mutex);
    files.paths.push_back(path);
    return "ipc://" + path.string();
}

inline std::vector<std::uint8_t> encoded(const Batch& b) { return kvbm::msgpack::encode(b); }

}  // namespace kvbm_test
