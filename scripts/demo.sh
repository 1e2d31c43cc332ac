#!/usr/bin/env bash
# Builds kvbm (Release) and runs the main demo: a hub and 4 simulated inference workers in
# one process over ZeroMQ on loopback, with a prefix-aware router and correctness checks.
# Extra arguments go to kvbm-demo (see `kvbm-demo --help`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${KVBM_BUILD_ROOT:-$root/build-demo}
"$root/scripts/deps.sh"
cmake -S "$root" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVBM_BUILD_TESTS=OFF -DKVBM_BUILD_BENCH=OFF >/dev/null
cmake --build "$out" -j "$(nproc)" --target kvbm-demo kvbm-wire kvbm-hub
exec "$out/examples/kvbm-demo" "$@"
