/// @file kvbm/index_snapshot.hpp
/// A PositionalIndex saved to a file and loaded back, with the position in an event log it
/// covers (a JetStream stream sequence), so that a restarted hub replays only what came
/// after. Core: no dependency.
///
/// Format (little-endian, version 1): "KVBMIDX1", block_size u64, max_seq_len u64,
/// sequence u64, origin length u64 + bytes, instance count u64, then per instance its id
/// (hi u64, lo u64), its hash count u64 and the raw 128-bit hashes (hi, lo), and last an
/// FNV-1a 64 checksum of everything before it. Holdings are grouped by instance so that
/// loading is one Create batch per instance. Counters (IndexStats) are not saved.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/events.hpp>
#include <kvbm/index.hpp>
#include <kvbm/uint128.hpp>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

KVBM_NAMESPACE_BEGIN

/// What a snapshot file says about itself.
struct IndexSnapshotInfo {
    /// The last event-log position whose effect the snapshot includes (0: none).
    std::uint64_t sequence = 0;
    /// Where the sequence numbers come from (e.g. a stream's name and creation time): a
    /// snapshot is only valid against the same log.
    std::string origin;
    std::uint64_t block_size = 0;
    std::uint64_t max_seq_len = 0;
    std::size_t instances = 0;
    std::size_t holdings = 0;
};

/// A snapshot file that is truncated, corrupt, of another format or version, or does not
/// fit the index it is loaded into.
class IndexSnapshotError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

class SnapshotWriter {
public:
    void u64(std::uint64_t v) {
        for (int i = 0; i < 8; ++i) {
            m_bytes.push_back(static_cast<char>((v >> (8 * i)) & 0xffU));
        }
    }
    void u128(const Uint128& v) {
        u64(v.high());
        u64(v.low());
    }
    void bytes(std::string_view s) { m_bytes.append(s); }
    [[nodiscard]] std::string& data() noexcept { return m_bytes; }

private:
    std::string m_bytes;
};

class SnapshotReader {
public:
    explicit SnapshotReader(std::string_view bytes) : m_bytes(bytes) {}
    std::uint64_t u64() {
        need(8);
        std::uint64_t v = 0;
        for (int i = 0; i < 8; ++i) {
            v |= std::uint64_t{static_cast<unsigned char>(m_bytes[m_pos + static_cast<std::size_t>(i)])} << (8 * i);
        }
        m_pos += 8;
        return v;
    }
    Uint128 u128() {
        const std::uint64_t hi = u64();
        return Uint128::from_parts(hi, u64());
    }
    std::string_view bytes(std::uint64_t n) {
        need(n);
        const auto out = m_bytes.substr(m_pos, static_cast<std::size_t>(n));
        m_pos += static_cast<std::size_t>(n);
        return out;
    }
    /// Bytes left: bounds a count read from the file before anything is allocated for it.
    [[nodiscard]] std::size_t left() const noexcept { return m_bytes.size() - m_pos; }

private:
    void need(std::uint64_t n) const {
        if (n > left()) {
            throw IndexSnapshotError("kvbm: index snapshot truncated");
        }
    }
    std::string_view m_bytes;
    std::size_t m_pos = 0;
};

[[nodiscard]] inline std::uint64_t fnv1a64(std::string_view s) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const char c : s) {
        h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    }
    return h;
}

inline constexpr std::string_view snapshot_magic = "KVBMIDX1";

}  // namespace detail

/// The snapshot bytes of `index` covering `sequence` of `origin`. The caller makes sure no
/// batch is applied meanwhile (the hub takes it between two events), so that the index is
/// exactly the effect of the log up to `sequence`.
template <WireSequenceHash H>
[[nodiscard]] std::string encode_index_snapshot(const PositionalIndex<H>& index, std::uint64_t sequence,
                                                std::string_view origin) {
    std::map<InstanceId, std::vector<H>> by_instance;
    for (const auto& entry : index.snapshot()) {  // by position ascending: Create's order
        for (const InstanceId& id : entry.holders) {
            by_instance[id].push_back(entry.hash);
        }
    }
    detail::SnapshotWriter w;
    w.bytes(detail::snapshot_magic);
    w.u64(index.block_size());
    w.u64(index.max_seq_len());
    w.u64(sequence);
    w.u64(origin.size());
    w.bytes(origin);
    w.u64(by_instance.size());
    for (const auto& [id, hashes] : by_instance) {
        w.u128(id);
        w.u64(hashes.size());
        for (const H& h : hashes) {
            w.u128(h.raw());
        }
    }
    w.u64(detail::fnv1a64(w.data()));
    return std::move(w.data());
}

/// The header of snapshot `bytes` (sequence, origin, block size, max_seq_len; instances and
/// holdings are left 0), after checking its format and checksum; nothing is decoded into an
/// index. Throws IndexSnapshotError like decode_index_snapshot.
[[nodiscard]] inline IndexSnapshotInfo peek_index_snapshot(std::string_view bytes) {
    if (bytes.size() < detail::snapshot_magic.size() + 8 ||
        bytes.substr(0, detail::snapshot_magic.size()) != detail::snapshot_magic) {
        throw IndexSnapshotError("kvbm: not an index snapshot (bad magic or version)");
    }
    const std::string_view body = bytes.substr(0, bytes.size() - 8);
    detail::SnapshotReader tail(bytes.substr(bytes.size() - 8));
    if (tail.u64() != detail::fnv1a64(body)) {
        throw IndexSnapshotError("kvbm: index snapshot checksum mismatch (corrupt or truncated)");
    }
    detail::SnapshotReader r(body);
    (void)r.bytes(detail::snapshot_magic.size());
    IndexSnapshotInfo info;
    info.block_size = r.u64();
    info.max_seq_len = r.u64();
    info.sequence = r.u64();
    info.origin = std::string(r.bytes(r.u64()));
    return info;
}

/// Applies snapshot `bytes` to `index`, which must be empty and have the snapshot's
/// block size (its capacity grows to the snapshot's if smaller). Throws IndexSnapshotError
/// (the index unchanged) for anything malformed.
template <WireSequenceHash H>
IndexSnapshotInfo decode_index_snapshot(std::string_view bytes, PositionalIndex<H>& index) {
    IndexSnapshotInfo info = peek_index_snapshot(bytes);
    detail::SnapshotReader r(bytes.substr(0, bytes.size() - 8));
    (void)r.bytes(detail::snapshot_magic.size() + std::size_t{24});  // block size, max_seq_len, sequence
    (void)r.bytes(r.u64());
    if (info.block_size != index.block_size()) {
        throw IndexSnapshotError("kvbm: index snapshot has block_size " + std::to_string(info.block_size) +
                                 ", the index " + std::to_string(index.block_size()));
    }
    if (!index.empty()) {
        throw IndexSnapshotError("kvbm: index snapshot loaded into a non-empty index");
    }
    // Decode everything before touching the index: a bad file changes nothing.
    const std::uint64_t count = r.u64();
    if (count > r.left() / 24) {
        throw IndexSnapshotError("kvbm: index snapshot truncated");
    }
    std::vector<KvbmCacheEvents<H>> batches;
    batches.reserve(static_cast<std::size_t>(count));
    for (std::uint64_t i = 0; i < count; ++i) {
        KvbmCacheEvents<H> b;
        b.instance_id = r.u128();
        const std::uint64_t n = r.u64();
        if (n > r.left() / 16) {
            throw IndexSnapshotError("kvbm: index snapshot truncated");
        }
        b.events.kind = BatchKind::create;
        b.events.hashes.reserve(static_cast<std::size_t>(n));
        for (std::uint64_t j = 0; j < n; ++j) {
            b.events.hashes.push_back(H::from_raw(r.u128()));
        }
        info.holdings += static_cast<std::size_t>(n);
        batches.push_back(std::move(b));
    }
    if (r.left() != 0) {
        throw IndexSnapshotError("kvbm: index snapshot has trailing bytes");
    }
    if (info.max_seq_len > index.max_seq_len() && info.max_seq_len % index.block_size() == 0) {
        index.grow(info.max_seq_len);
    }
    for (const auto& b : batches) {
        index.apply(b);
    }
    info.instances = batches.size();
    return info;
}

/// Writes the snapshot of `index` to `path` atomically: a temporary file beside it,
/// fsync, rename over `path`, fsync of the directory. A crash leaves the old snapshot or
/// the new one, never a mix. Throws std::system_error on I/O failure.
template <WireSequenceHash H>
void save_index_snapshot(const PositionalIndex<H>& index, const std::filesystem::path& path, std::uint64_t sequence,
                         std::string_view origin) {
    const std::string bytes = encode_index_snapshot(index, sequence, origin);
    const std::filesystem::path tmp = path.string() + ".tmp";
    const auto fail = [&](const char* what) {
        throw std::system_error(errno, std::generic_category(),
                                std::string("kvbm: index snapshot ") + what + " " + tmp.string());
    };
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fail("open");
    }
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            ::close(fd);
            fail("write");
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        ::close(fd);
        fail("fsync");
    }
    ::close(fd);
    std::filesystem::rename(tmp, path);
    const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
    }
}

/// Loads the snapshot at `path` into `index` (see decode_index_snapshot); nullopt when the
/// file does not exist. Throws IndexSnapshotError for a bad file, std::system_error when it
/// cannot be read.
template <WireSequenceHash H>
std::optional<IndexSnapshotInfo> load_index_snapshot(PositionalIndex<H>& index, const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (!std::filesystem::exists(path)) {
            return std::nullopt;
        }
        throw std::system_error(errno, std::generic_category(), "kvbm: cannot read index snapshot " + path.string());
    }
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return decode_index_snapshot(bytes, index);
}

KVBM_NAMESPACE_END
