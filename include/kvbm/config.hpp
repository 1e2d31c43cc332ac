/// @file kvbm/config.hpp
/// Version numbers and the inline ABI namespace shared by every kvbm header.
#pragma once

#define KVBM_VERSION_MAJOR 0
#define KVBM_VERSION_MINOR 1
#define KVBM_VERSION_PATCH 0

// Every public name lives in kvbm::v0 (an inline namespace), so two copies of kvbm with
// different major versions can be linked into one program without ODR violations, while
// users still write plain kvbm::name.
#define KVBM_NAMESPACE_BEGIN \
    namespace kvbm {         \
    inline namespace v0 {
#define KVBM_NAMESPACE_END \
    }                      \
    }

#if defined(__GNUC__) || defined(__clang__)
#define KVBM_FLATTEN __attribute__((flatten))
#define KVBM_LIKELY(x) __builtin_expect(!!(x), 1)
#define KVBM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define KVBM_FLATTEN
#define KVBM_LIKELY(x) (x)
#define KVBM_UNLIKELY(x) (x)
#endif
