#!/usr/bin/env bash
# Builds kvbm-hub (Release) and runs it: the hub as a service (HTTP discovery API on
# 127.0.0.1:1337 by default, ZeroMQ ingest on a free port). Arguments go to kvbm-hub (see
# `kvbm-hub --help`); it prints one JSON ready line on stdout and stops on SIGINT/SIGTERM.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${KVBM_BUILD_ROOT:-$root/build-demo}
"$root/scripts/deps.sh" >&2
cmake -S "$root" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVBM_BUILD_TESTS=OFF -DKVBM_BUILD_BENCH=OFF >&2
cmake --build "$out" -j "$(nproc)" --target kvbm-hub >&2
exec "$out/examples/kvbm-hub" "$@"
