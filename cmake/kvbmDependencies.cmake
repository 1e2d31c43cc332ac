# Finds kvbm's optional dependencies, quietly, for both the build tree and installed
# package configs. Sets KVBM_HAVE_XXHASH, KVBM_HAVE_NLOHMANN_JSON, KVBM_HAVE_CPPZMQ.
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
