#!/usr/bin/env bash
# Builds and runs every kvbm test: lint (clang-format, clang-tidy), the API reference (doxygen,
# warnings are errors), gcc and clang at -Werror, clang with libc++, ASan+UBSan, TSan, the
# fuzz targets for a bounded time, and the ways users consume the library (install +
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
# Fast failures first: lint and docs take minutes, the sanitizer builds much longer.
((${#stages[@]})) || stages=(lint docs gcc clang libcxx asan tsan fuzz consumers)

"$root/scripts/deps.sh"

# ccache (from deps.sh) makes a rerun rebuild only what changed; paths are taken relative
# to the tree, so another clone of it hits the same cache.
if command -v ccache >/dev/null 2>&1; then
  export CMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER:-ccache}
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root}
fi

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

# clang-format-14 over every C++ file git tracks; clang-tidy-14 with the checks in .clang-tidy
# (warnings are errors there) over one TU per public header (tests/header_alone), the
# examples and the tests, from the compile database of a configure-only tree. About 650 s
# of CPU (5-6 minutes on 2 idle cores).
lint() {
  echo "=== lint: clang-format-14"
  local sources=()
  mapfile -d '' sources < <(git -C "$root" ls-files -z -- '*.cpp' '*.hpp' '*.h' '*.cc')
  ((${#sources[@]})) || { echo "lint: git lists no C++ file under $root" >&2; return 1; }
  (cd "$root" && clang-format-14 --dry-run --Werror "${sources[@]}")
  echo "clang-format: ${#sources[@]} files clean"
  echo "=== lint: clang-tidy-14"
  cmake -S "$root" -B "$out/lint" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DKVBM_REQUIRE_ALL_TESTS=ON -DKVBM_BUILD_BENCH=OFF >/dev/null
  # The clang static analyzer (clang-analyzer-*) runs on the library's headers and the
  # examples; on the tests, whose code is checked by the sanitizers, it would triple the time.
  local rc=0
  run-clang-tidy-14 -p "$out/lint" -j "$jobs" -quiet "$out/lint/tests/header_alone/" "$root/examples/" \
    >"$out/lint/clang-tidy.log" 2>&1 || rc=$?
  run-clang-tidy-14 -p "$out/lint" -j "$jobs" -quiet -checks=-clang-analyzer-* "$root/tests/" \
    >>"$out/lint/clang-tidy.log" 2>&1 || rc=$?
  # A header's finding repeats in every TU that includes it: print each once (run-clang-tidy
  # asks for colour: strip it).
  sed -i 's/\x1b\[[0-9;]*m//g' "$out/lint/clang-tidy.log"
  grep -E "^/.*: (error|warning): " "$out/lint/clang-tidy.log" | sort -u || true
  if ((rc != 0)); then
    grep -E "^(Error|error:)|failed" "$out/lint/clang-tidy.log" | sort -u || true
    echo "clang-tidy: findings above (full log: $out/lint/clang-tidy.log)" >&2
    return 1
  fi
  echo "clang-tidy: clean"
}

san_flags="-fno-omit-frame-pointer -g"
for stage in "${stages[@]}"; do
  start=$SECONDS
  case $stage in
    lint)
      lint ;;
    docs)
      echo "=== docs"
      cmake -S "$root" -B "$out/docs" -G Ninja -DKVBM_BUILD_TESTS=OFF -DKVBM_BUILD_EXAMPLES=OFF \
        -DKVBM_BUILD_BENCH=OFF >/dev/null
      cmake --build "$out/docs" --target docs ;;
    gcc)
      configure_build_test gcc "" -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release ;;
    clang)
      configure_build_test clang "" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Release \
        -DKVBM_BUILD_BENCH=OFF ;;
    libcxx)  # users on Apple's toolchain or LLVM-only Linux builds: clang with libc++
      # The core's tests and every part whose dependencies link with libc++. Debian's
      # cpp-httplib is a compiled library built against libstdc++, so kvbm::hub (and the
      # hub service and demo on it) cannot be linked here: the stage does not require all
      # components (the gcc/clang/sanitizer stages do).
      configure_build_test libcxx "" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Release \
        -DKVBM_BUILD_BENCH=OFF -DCMAKE_CXX_FLAGS=-stdlib=libc++ -DKVBM_REQUIRE_ALL_TESTS=OFF ;;
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
  echo "=== $stage passed in $((SECONDS - start)) s"
done
echo "all stages passed: ${stages[*]}"
