# Finds kvbm's optional dependencies, quietly, for both the build tree and installed
# package configs. Sets KVBM_HAVE_XXHASH, KVBM_HAVE_NLOHMANN_JSON, KVBM_HAVE_CPPZMQ,
# KVBM_HAVE_NATS, KVBM_HAVE_HTTPLIB.
include_guard(GLOBAL)
include(CMakeFindDependencyMacro)

# Sets VAR to ON when TARGET exists, else OFF.
macro(_kvbm_have var target)
  if(TARGET ${target})
    set(${var} ON)
  else()
    set(${var} OFF)
  endif()
endmacro()

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
_kvbm_have(KVBM_HAVE_XXHASH kvbm::xxhash_headers)

if(NOT TARGET nlohmann_json::nlohmann_json)
  find_package(nlohmann_json 3.10 QUIET)
endif()
_kvbm_have(KVBM_HAVE_NLOHMANN_JSON nlohmann_json::nlohmann_json)

if(NOT TARGET cppzmq)
  find_package(cppzmq QUIET)
endif()
_kvbm_have(KVBM_HAVE_CPPZMQ cppzmq)

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
_kvbm_have(KVBM_HAVE_NATS kvbm::cnats)

# cpp-httplib (kvbm::hub). Upstream's CMake package gives httplib::httplib; Debian's
# libcpp-httplib-dev ships a compiled library whose header declares only (split mode), plus
# a .pc file whose Cflags carry the feature macros the library was built with (the class
# layouts depend on them). Found only when a program using it links: a libstdc++-built
# library cannot serve a libc++ build, and then kvbm::hub is simply absent.
if(NOT TARGET kvbm::httplib)
  if(NOT TARGET httplib::httplib)
    find_package(httplib QUIET CONFIG)
  endif()
  if(TARGET httplib::httplib)
    add_library(kvbm::httplib INTERFACE IMPORTED)
    target_link_libraries(kvbm::httplib INTERFACE httplib::httplib)
  else()
    find_package(PkgConfig QUIET)
    if(PKG_CONFIG_FOUND)
      pkg_check_modules(KVBM_PC_HTTPLIB QUIET cpp-httplib)
    endif()
    find_path(KVBM_HTTPLIB_INCLUDE_DIR httplib.h HINTS ${KVBM_PC_HTTPLIB_INCLUDE_DIRS})
    find_library(KVBM_HTTPLIB_LIBRARY NAMES cpp-httplib HINTS ${KVBM_PC_HTTPLIB_LIBRARY_DIRS})
    if(KVBM_HTTPLIB_INCLUDE_DIR AND KVBM_HTTPLIB_LIBRARY)
      set(_kvbm_httplib_defs)
      foreach(_kvbm_flag IN LISTS KVBM_PC_HTTPLIB_CFLAGS_OTHER)
        if(_kvbm_flag MATCHES "^-D(.*)")
          list(APPEND _kvbm_httplib_defs ${CMAKE_MATCH_1})
        endif()
      endforeach()
      include(CheckCXXSourceCompiles)
      include(CMakePushCheckState)
      cmake_push_check_state(RESET)
      set(CMAKE_REQUIRED_INCLUDES ${KVBM_HTTPLIB_INCLUDE_DIR})
      set(CMAKE_REQUIRED_LIBRARIES ${KVBM_HTTPLIB_LIBRARY})
      list(TRANSFORM _kvbm_httplib_defs PREPEND "-D" OUTPUT_VARIABLE CMAKE_REQUIRED_DEFINITIONS)
      set(CMAKE_REQUIRED_QUIET ON)
      check_cxx_source_compiles("#include <httplib.h>
        int main() { httplib::Server s; httplib::Client c(\"http://127.0.0.1:1\"); return s.is_running() ? 1 : 0; }"
        KVBM_HTTPLIB_LINKS)
      cmake_pop_check_state()
      if(KVBM_HTTPLIB_LINKS)
        add_library(kvbm::httplib INTERFACE IMPORTED)
        set_target_properties(kvbm::httplib PROPERTIES
          INTERFACE_INCLUDE_DIRECTORIES "${KVBM_HTTPLIB_INCLUDE_DIR}"
          INTERFACE_LINK_LIBRARIES "${KVBM_HTTPLIB_LIBRARY}"
          INTERFACE_COMPILE_DEFINITIONS "${_kvbm_httplib_defs}")
      endif()
    endif()
  endif()
endif()
_kvbm_have(KVBM_HAVE_HTTPLIB kvbm::httplib)
