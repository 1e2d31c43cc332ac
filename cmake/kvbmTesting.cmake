# kvbm's own test plumbing (not installed): a TIMEOUT on every test, and CI's rule that no
# test may silently disappear because an optional dependency or a tool is missing.
include_guard(GLOBAL)

option(KVBM_REQUIRE_ALL_TESTS
       "Fail configuration when an optional dependency (any KVBM_HAVE_* that is OFF) or a test's tool is missing, so that no test silently disappears (scripts/test.sh sets it)"
       OFF)

# Default TIMEOUT in seconds of every test registered with kvbm_add_test and of every other
# test in such a directory that sets none. Sanitizer builds run several times slower.
if(NOT DEFINED KVBM_TEST_TIMEOUT)
  if(CMAKE_CXX_FLAGS MATCHES "-fsanitize=")
    set(KVBM_TEST_TIMEOUT 900)
  else()
    set(KVBM_TEST_TIMEOUT 300)
  endif()
endif()

# kvbm_test_skipped(<test> <reason>): call it instead of silently not registering a test whose
# tool, module or service is missing. A configure error under KVBM_REQUIRE_ALL_TESTS.
function(kvbm_test_skipped name reason)
  if(KVBM_REQUIRE_ALL_TESTS)
    message(FATAL_ERROR "kvbm: test ${name} cannot be registered: ${reason} "
                        "(KVBM_REQUIRE_ALL_TESTS is ON: install it, see scripts/deps.sh)")
  endif()
  message(STATUS "kvbm: test ${name} not registered: ${reason}")
endfunction()

# kvbm_default_test_timeouts(): gives every test of the current directory that has no
# TIMEOUT the default. kvbm_add_test defers it to the end of each directory it is used in,
# so tests added there with a plain add_test (scripts, peers) are covered too.
function(kvbm_default_test_timeouts)
  get_property(tests DIRECTORY PROPERTY TESTS)
  foreach(test IN LISTS tests)
    get_test_property(${test} TIMEOUT timeout)
    if(NOT timeout)
      set_tests_properties(${test} PROPERTIES TIMEOUT ${KVBM_TEST_TIMEOUT})
    endif()
  endforeach()
endfunction()

# kvbm_defer_default_test_timeouts(): schedules the above once for the current directory.
function(kvbm_defer_default_test_timeouts)
  get_property(scheduled DIRECTORY PROPERTY KVBM_TIMEOUTS_SCHEDULED)
  if(NOT scheduled)
    set_property(DIRECTORY PROPERTY KVBM_TIMEOUTS_SCHEDULED ON)
    cmake_language(DEFER CALL kvbm_default_test_timeouts)
  endif()
endfunction()

# Under KVBM_REQUIRE_ALL_TESTS every optional component must be there: any variable
# KVBM_HAVE_<X> that is false at the end of configuration (cmake/kvbmDependencies.cmake sets
# them; new components follow the same convention) is an error, as are tests or examples
# switched off. Checked at the end of the top directory, after every subdirectory.
function(kvbm_check_all_tests_possible)
  if(NOT KVBM_REQUIRE_ALL_TESTS)
    return()
  endif()
  set(missing)
  get_cmake_property(vars VARIABLES)
  get_cmake_property(cache_vars CACHE_VARIABLES)
  list(APPEND vars ${cache_vars})
  list(REMOVE_DUPLICATES vars)
  foreach(var IN LISTS vars)
    if(var MATCHES "^KVBM_HAVE_" AND NOT ${var})
      list(APPEND missing ${var})
    endif()
  endforeach()
  foreach(opt KVBM_BUILD_TESTS KVBM_BUILD_EXAMPLES)
    if(NOT ${opt})
      list(APPEND missing "${opt} (is OFF)")
    endif()
  endforeach()
  if(missing)
    list(JOIN missing ", " missing)
    message(FATAL_ERROR "kvbm: KVBM_REQUIRE_ALL_TESTS is ON but some tests cannot be built: ${missing}. "
                        "Install the dependencies (scripts/deps.sh) or configure without KVBM_REQUIRE_ALL_TESTS.")
  endif()
endfunction()
cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL kvbm_check_all_tests_possible)
