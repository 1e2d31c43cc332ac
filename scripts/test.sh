#!/usr/bin/env bash
# Builds and runs every kvbm test: gcc and clang at -Werror, ASan+UBSan, TSan, the fuzz
# targets for a bounded time, and the ways users consume the library (install +
# find_package, a rejected wrong version, add_subdirectory, FetchContent, a vendored copy).
#   scripts/test.sh            everything (what .ci/run runs)
#   scripts/test.sh gcc asan   only the named stages
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${KVBM_BUILD_ROOT:-$root/build-test}
jobs=${KVBM_JOBS:-$(nproc)}
# ctest's default TIMEOUT for a test that sets none (every kvbm test sets one: this is the
# backstop, so that nothing can hang CI).
test_timeout=${KVBM_CTEST_TIMEOUT:-900}
stages=("$@")
((${#stages[@]})) || stages=(gcc clang asan tsan fuzz consumers)

"$root/scripts/deps.sh"

# Every stage configures with KVBM_REQUIRE_ALL_TESTS: a missing optional dependency or test
# tool is a configure error, never a test that silently disappears.
configure_build_test() {  # name, ctest-args, cmake-args...
  local name=$1 ctest_args=$2
  shift 2
  echo "=== $name"
  cmake -S "$root" -B "$out/$name" -G Ninja -DKVBM_WERROR=ON -DKVBM_REQUIRE_ALL_TESTS=ON "$@" >/dev/null
  cmake --build "$out/$name" -j "$jobs"
  ctest --test-dir "$out/$name" --output-on-failure -j "$jobs" --timeout "$test_timeout" \
    --no-tests=error $ctest_args
}

san_flags="-fno-omit-frame-pointer -g"
for stage in "${stages[@]}"; do
  case $stage in
    gcc)
      configure_build_test gcc "" -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release ;;
    clang)
      configure_build_test clang "" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Release \
        -DKVBM_BUILD_BENCH=OFF ;;
    asan)
      UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
      configure_build_test asan "" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DKVBM_BUILD_BENCH=OFF \
        "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-sanitize-recover=all $san_flags" ;;
    tsan)
      TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
      configure_build_test tsan "" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DKVBM_BUILD_BENCH=OFF "-DCMAKE_CXX_FLAGS=-fsanitize=thread $san_flags" ;;
    fuzz)
      echo "=== fuzz"
      "$root/tests/fuzz/run.sh" "$out/fuzz" ;;
    consumers)
      echo "=== consumers"
      "$root/tests/consumers/run.sh" "$out/consumers" ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
echo "all stages passed: ${stages[*]}"
