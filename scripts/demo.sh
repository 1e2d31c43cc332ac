#!/usr/bin/env bash
# Builds kvbm's tools (Release) and runs the main demo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${KVBM_BUILD_ROOT:-$root/build-demo}
"$root/scripts/deps.sh"
cmake -S "$root" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVBM_BUILD_TESTS=OFF >/dev/null
cmake --build "$out" -j "$(nproc)" --target kvbm-wire >/dev/null
echo "kvbm-wire hash --block-size 4 --salt 1337 <<< '1 2 3 4 5 6 7 8 9 10 11 12 13'"
echo "POSITION BLOCK_HASH SEQUENCE_HASH PLH_HEX DISPLAY"
"$out/examples/kvbm-wire" hash --block-size 4 --salt 1337 <<< '1 2 3 4 5 6 7 8 9 10 11 12 13'
