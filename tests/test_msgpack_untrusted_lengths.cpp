// Length headers are never trusted: messages whose headers claim up to 4 billion elements
// or bytes fail at the end of the (short) input, and no allocation grows beyond what the
// input could hold. Global operator new is replaced here to watch every allocation.
#include "codec_vectors.hpp"

#include <kvbm/msgpack.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>

// Under AddressSanitizer or ThreadSanitizer, which own operator new, allocations are
// watched through the sanitizer's malloc hooks instead.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KVBM_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define KVBM_TEST_ASAN 1
#endif
#endif
#if KVBM_TEST_ASAN
#include <sanitizer/allocator_interface.h>
#endif

namespace {
std::atomic<std::size_t> g_largest{0};
std::atomic<bool> g_watch{false};

void record(std::size_t n) {
    if (g_watch.load(std::memory_order_relaxed) && n > g_largest.load(std::memory_order_relaxed)) {
        g_largest.store(n, std::memory_order_relaxed);
    }
}
}  // namespace

#if KVBM_TEST_ASAN
namespace {
void on_malloc(const volatile void*, std::size_t n) { record(n); }
void on_free(const volatile void*) {}
const int hooks_installed = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}  // namespace
#else
void* operator new(std::size_t n) {
    record(n);
    if (void* p = std::malloc(n == 0 ? 1 : n)) {
        return p;
    }
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

namespace {
/// The largest single allocation made while decoding `hex_bytes` (which must be rejected).
std::size_t largest_allocation_rejecting(const std::string& hex_bytes) {
    const auto bytes = kvbm_test::unhex(hex_bytes);
    g_largest = 0;
    g_watch = true;
    const bool ok = kvbm::msgpack::decode_batch(bytes).has_value();
    g_watch = false;
    CHECK(!ok);
    return g_largest;
}
}  // namespace

TEST_CASE("headers claiming billions of elements fail without allocating for them") {
    const std::string id = "c410" + std::string(32, '0');
    const std::string h = "c410" + std::string(30, '0') + "05";
    // Hash arrays: array32 / array16 claiming more hashes than follow.
    for (const std::string& header : {std::string("ddffffffff"), std::string("dd7fffffff"), std::string("dcffff")}) {
        std::string hashes;
        for (int i = 0; i < 100; ++i) {
            hashes += h;
        }
        const std::string msg = "9281a6437265617465" + header + hashes;
        INFO(header);
        // Error strings and the result allocate a little; the hash vector at most what 100 hashes need.
        CHECK(largest_allocation_rejecting(msg) <= 100 * sizeof(kvbm::PositionalLineageHash));
    }
    // Struct maps, enum maps, skipped containers and strings claiming 4G entries or bytes.
    for (const std::string& msg : {std::string("dfffffffff") + "a6"
                                                               "6576656e7473"
                                                               "a853687574646f776e",
                                   std::string("92") +
                                       "dfffffffff"
                                       "a6437265617465"
                                       "90" +
                                       id,
                                   std::string("83") + "a6"
                                                       "6576656e7473"
                                                       "a853687574646f776e"
                                                       "a1"
                                                       "78"
                                                       "ddffffffff"
                                                       "c0c0c0",
                                   std::string("83") + "a6"
                                                       "6576656e7473"
                                                       "a853687574646f776e"
                                                       "a1"
                                                       "78"
                                                       "dfffffffff"
                                                       "c0c0c0",
                                   std::string("83") + "a6"
                                                       "6576656e7473"
                                                       "a853687574646f776e"
                                                       "a1"
                                                       "78"
                                                       "dbffffffff"
                                                       "41",
                                   std::string("83") + "a6"
                                                       "6576656e7473"
                                                       "a853687574646f776e"
                                                       "a1"
                                                       "78"
                                                       "c6ffffffff"
                                                       "41",
                                   std::string("83") + "a6"
                                                       "6576656e7473"
                                                       "a853687574646f776e"
                                                       "a1"
                                                       "78"
                                                       "c9ffffffff01"
                                                       "41",
                                   std::string("92") + "81"
                                                       "dbffffffff"
                                                       "43726561",
                                   std::string("92") + "81a6437265617465"
                                                       "91"
                                                       "c6ffffffff00"}) {
        INFO(msg);
        CHECK(largest_allocation_rejecting(msg) < 1024);
    }
}

TEST_CASE("a valid message allocates only what its hashes need") {
#if KVBM_TEST_ASAN
    REQUIRE(hooks_installed != 0);
#endif
    kvbm_test::Batch b{kvbm::KvCacheEvents<>::create(std::vector<kvbm::PositionalLineageHash>(1000)), 1U};
    const auto bytes = kvbm::msgpack::encode(b);
    g_largest = 0;
    g_watch = true;
    const auto r = kvbm::msgpack::decode_batch(bytes);
    g_watch = false;
    REQUIRE(r);
    CHECK(g_largest == 1000 * sizeof(kvbm::PositionalLineageHash));
}
