#!/usr/bin/env bash
# Installs what kvbm's build, tests, demo and benchmark use, from Debian's packages.
# Skips apt entirely when everything is already there.
set -euo pipefail
packages=(cmake ninja-build g++ clang-14 libclang-rt-14-dev python3
          nlohmann-json3-dev catch2 libxxhash-dev cppzmq-dev libzmq3-dev
          python3-zmq python3-msgpack
          libcpp-httplib-dev libcli11-dev libnats-dev nats-server
          clang-format-14 clang-tidy-14 doxygen wrk python3-prometheus-client
          libc++-14-dev libc++abi-14-dev curl ccache)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
