/// @file kvbm/detail/recycling_allocator.hpp
/// A per-thread cache of equal-sized memory blocks behind a standard allocator, for objects
/// a cache manager churns (one registration per block, made on registration and freed on
/// release). Blocks are made and freed in bursts longer than malloc's own per-thread cache
/// (seven of a size in glibc), so without it most frees and allocations take malloc's
/// locked paths; with it a warm allocation or free is a few loads and stores.
#pragma once

#include <kvbm/config.hpp>

#include <cstddef>
#include <memory>
#include <new>
#include <utility>

KVBM_NAMESPACE_BEGIN

namespace detail {

/// The calling thread's cache of free blocks of `Size` bytes: at most `capacity` of them
/// are kept (the rest go back to operator delete); they are freed when the thread exits.
/// A block may be freed on another thread than the one it came from (it then joins that
/// thread's cache). Not for direct use: see RecyclingAllocator.
template <std::size_t Size>
class BlockCache {
public:
    static constexpr std::size_t capacity = 256;
    static constexpr std::size_t block_size = Size < sizeof(void*) ? sizeof(void*) : Size;

    BlockCache() = default;
    BlockCache(const BlockCache&) = delete;
    BlockCache& operator=(const BlockCache&) = delete;
    ~BlockCache() {
        gone() = true;  // later frees on this thread (other thread_locals' destructors) bypass us
        while (m_head != nullptr) {
            ::operator delete(static_cast<void*>(std::exchange(m_head, m_head->next)));
        }
    }

    [[nodiscard]] static void* allocate() {
        if (!gone()) {
            BlockCache& c = local();
            if (c.m_head != nullptr) {
                --c.m_count;
                return std::exchange(c.m_head, c.m_head->next);
            }
        }
        return ::operator new(block_size);
    }

    static void deallocate(void* p) noexcept {
        if (!gone()) {
            BlockCache& c = local();
            if (c.m_count < capacity) {
                c.m_head = ::new (p) Free{c.m_head};
                ++c.m_count;
                return;
            }
        }
        ::operator delete(p);
    }

private:
    struct Free {
        Free* next;
    };

    static BlockCache& local() {
        thread_local BlockCache cache;
        return cache;
    }
    // Trivially destructible, so it can be read at any point of the thread's exit.
    static bool& gone() noexcept {
        thread_local bool flag = false;
        return flag;
    }

    Free* m_head = nullptr;
    std::size_t m_count = 0;
};

/// A stateless allocator whose single-object allocations come from the calling thread's
/// BlockCache of that size (arrays go to std::allocator). For `std::allocate_shared`.
template <class T>
struct RecyclingAllocator {
    using value_type = T;

    RecyclingAllocator() noexcept = default;
    template <class U>
    RecyclingAllocator(const RecyclingAllocator<U>& /*other*/) noexcept {}

    [[nodiscard]] T* allocate(std::size_t n) {
        static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "over-aligned types are not cached");
        if (n == 1) {
            return static_cast<T*>(BlockCache<sizeof(T)>::allocate());
        }
        return std::allocator<T>{}.allocate(n);
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (n == 1) {
            BlockCache<sizeof(T)>::deallocate(p);
        } else {
            std::allocator<T>{}.deallocate(p, n);
        }
    }

    friend bool operator==(const RecyclingAllocator& /*a*/, const RecyclingAllocator& /*b*/) noexcept { return true; }
};

}  // namespace detail

KVBM_NAMESPACE_END
