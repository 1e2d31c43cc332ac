# Finds kvbm's optional dependencies, quietly, for both the build tree and installed
# package configs. Sets KVBM_HAVE_XXHASH, KVBM_HAVE_NLOHMANN_JSON, KVBM_HAVE_CPPZMQ,
# KVBM_HAVE_NATS.
include_guard(GLOBAL)
include(CMakeFindDependencyMacro)

# xxHash: Debian's libxxhash-dev ships no CMake config, only the header and a .pc file.
# kvbm uses it header-only (XXH_INLINE_ALL), so the header directory is all it needs.
if(NOT TARGET kvbm::xxhash_headers)
  if(TARGET xxHash::xxhash)
    add_library(kvbm::xxhash_headers INTERFACE IMPORTED)
    target_link_libraries(kvbm::xxhash_headers INTERFACE xxHash::xxhash)
  else()
    find_path(KVBM_XXHASH_INCLUDE_DIR xxhash.h)
    if(KVBM_XXHASH_INCLUDE_DIR)
      add_library(kvbm::xxhash_headers INTERFACE IMPORTED)
      set_target_properties(kvbm::xxhash_headers PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${KVBM_XXHASH_INCLUDE_DIR}")
    endif()
  endif()
endif()
if(TARGET kvbm::xxhash_headers)
  set(KVBM_HAVE_XXHASH ON)
else()
  set(KVBM_HAVE_XXHASH OFF)
endif()

if(NOT TARGET nlohmann_json::nlohmann_json)
  find_package(nlohmann_json 3.10 QUIET)
endif()
if(TARGET nlohmann_json::nlohmann_json)
  set(KVBM_HAVE_NLOHMANN_JSON ON)
else()
  set(KVBM_HAVE_NLOHMANN_JSON OFF)
endif()

if(NOT TARGET cppzmq)
  find_package(cppzmq QUIET)
endif()
if(TARGET cppzmq)
  set(KVBM_HAVE_CPPZMQ ON)
else()
  set(KVBM_HAVE_CPPZMQ OFF)
endif()

# NATS: the official C client (nats.c, Debian's libnats-dev). Its CMake config (cnats) is
# not used: Debian's names a static library the package does not ship, and loading it is a
# fatal error even with QUIET. The header and the shared library are all kvbm needs.
if(NOT TARGET kvbm::cnats)
  if(TARGET cnats::nats)
    add_library(kvbm::cnats INTERFACE IMPORTED)
    target_link_libraries(kvbm::cnats INTERFACE cnats::nats)
  else()
    find_path(KVBM_NATS_INCLUDE_DIR nats/nats.h)
    find_library(KVBM_NATS_LIBRARY nats)
    if(KVBM_NATS_INCLUDE_DIR AND KVBM_NATS_LIBRARY)
      add_library(kvbm::cnats UNKNOWN IMPORTED)
      set_target_properties(kvbm::cnats PROPERTIES
        IMPORTED_LOCATION "${KVBM_NATS_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${KVBM_NATS_INCLUDE_DIR}")
    endif()
  endif()
endif()
if(TARGET kvbm::cnats)
  set(KVBM_HAVE_NATS ON)
else()
  set(KVBM_HAVE_NATS OFF)
endif()
