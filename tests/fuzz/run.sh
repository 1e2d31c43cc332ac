#!/usr/bin/env bash
# Builds the libFuzzer targets (clang++-14, -fsanitize=fuzzer,address,undefined) and runs each
# for a bounded time from a corpus seeded with the golden vectors; fails on any crash, leak,
# sanitizer report, timeout or out-of-memory.
#   tests/fuzz/run.sh BUILD_DIR [SECONDS_PER_TARGET]     (default 45 s, or $KVBM_FUZZ_SECONDS)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: tests/fuzz/run.sh BUILD_DIR [SECONDS_PER_TARGET]}
seconds=${2:-${KVBM_FUZZ_SECONDS:-45}}
cxx=${KVBM_FUZZ_CXX:-clang++-14}
mkdir -p "$out"
out=$(cd "$out" && pwd)

flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=all -I "$root/include" -Wall -Wextra -Werror)
targets=(msgpack_batch msgpack_event json_1_2 json_1_3)
pids=()
for t in "${targets[@]}"; do  # two compilers at a time
  bin=$out/fuzz_$t
  if [[ ! -x $bin || -n $(find "$root/include" "$here" -newer "$bin" -name '*.?pp' 2>/dev/null | head -1) ]]; then
    echo "fuzz: building $t"
    "$cxx" "${flags[@]}" "$here/fuzz_$t.cpp" -o "$bin" &
    pids+=($!)
    if ((${#pids[@]} == 2)); then wait "${pids[0]}"; pids=("${pids[1]}"); fi
  fi
done
for p in "${pids[@]}"; do wait "$p"; done

python3 "$here/seed_corpus.py" "$root/tests/data" "$out/seeds"
for t in "${targets[@]}"; do
  dict=$here/${t%%_*}.dict
  [[ $t == json_* ]] && dict=$here/json.dict
  mkdir -p "$out/corpus/$t" "$out/artifacts"
  echo "fuzz: $t for ${seconds}s"
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  "$out/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -max_len=4096 \
    -dict="$dict" -artifact_prefix="$out/artifacts/$t-" -print_final_stats=1 \
    "$out/corpus/$t" "$out/seeds/$t" 2>"$out/$t.log" || {
      tail -40 "$out/$t.log"
      echo "fuzz: $t FAILED (log: $out/$t.log, input: $out/artifacts/)"
      exit 1
    }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/$t.log" | tr '\n' ' '
  echo
done
echo "fuzz: all targets ran ${seconds}s each without a finding"
