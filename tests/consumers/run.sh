#!/usr/bin/env bash
# Proves the ways users consume kvbm: install + find_package (with a component), a
# rejected wrong major version, add_subdirectory, FetchContent from the local tree, and a
# vendored copy of include/kvbm compiled with plain -I and no third-party header.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build-test/consumers}
rm -rf "$out"
mkdir -p "$out"
flags=(-G Ninja -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror")

echo "--- install + find_package(kvbm 0.1 COMPONENTS tokens)"
cmake -S "$root" -B "$out/kvbm" -G Ninja -DKVBM_BUILD_TESTS=OFF -DKVBM_BUILD_EXAMPLES=OFF \
  -DKVBM_BUILD_BENCH=OFF -DKVBM_INSTALL=ON >/dev/null
cmake --install "$out/kvbm" --prefix "$out/prefix" >/dev/null
cmake -S "$here/find_package" -B "$out/find_package" "${flags[@]}" -DCMAKE_PREFIX_PATH="$out/prefix" >/dev/null
cmake --build "$out/find_package" >/dev/null
"$out/find_package/consumer"

echo "--- find_package(kvbm 1.0) is rejected"
if cmake -S "$here/wrong_version" -B "$out/wrong_version" -G Ninja -DCMAKE_PREFIX_PATH="$out/prefix" \
     >"$out/wrong_version.log" 2>&1; then
  echo "FAIL: a 0.x install satisfied find_package(kvbm 1.0)"; exit 1
fi
# It must be rejected for its version, not for any other reason: CMake's own message, with
# the installed config named as considered and its version (the log is joined into one line,
# as CMake wraps its messages).
installed=$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")$/\1/p' "$out/prefix/share/cmake/kvbm/kvbmConfigVersion.cmake")
log=$(tr -s ' \n' '  ' <"$out/wrong_version.log")
for want in 'Could not find a configuration file for package "kvbm" that is compatible with requested version "1.0".' \
            "share/cmake/kvbm/kvbmConfig.cmake, version: $installed"; do
  if [[ -z $installed || $log != *"$want"* ]]; then
    echo "FAIL: find_package(kvbm 1.0) did not fail with: $want"; cat "$out/wrong_version.log"; exit 1
  fi
done

echo "--- add_subdirectory"
cmake -S "$here/add_subdirectory" -B "$out/add_subdirectory" "${flags[@]}" -DKVBM_SOURCE_DIR="$root" >/dev/null
cmake --build "$out/add_subdirectory" >/dev/null
"$out/add_subdirectory/consumer"

echo "--- FetchContent from the local tree"
cmake -S "$here/fetchcontent" -B "$out/fetchcontent" "${flags[@]}" -DKVBM_SOURCE_DIR="$root" >/dev/null
cmake --build "$out/fetchcontent" >/dev/null
"$out/fetchcontent/consumer"

echo "--- vendored include/kvbm with plain -I, core only"
mkdir -p "$out/vendored/third_party"
cp -r "$root/include/kvbm" "$out/vendored/third_party/"
${CXX:-g++} -std=c++20 -Wall -Wextra -Werror -pthread -I "$out/vendored/third_party" \
  "$here/consumer.cpp" -o "$out/vendored/consumer"
"$out/vendored/consumer"
# The core must not reach for any third-party header, installed or not.
${CXX:-g++} -std=c++20 -I "$out/vendored/third_party" -M "$here/consumer.cpp" > "$out/vendored/deps.txt"
if grep -E "nlohmann|xxhash|zmq|catch2" "$out/vendored/deps.txt"; then
  echo "FAIL: the core includes a third-party header"; exit 1
fi
echo "--- vendored <kvbm/json_text.hpp> with plain -I: the JSON text codec needs no nlohmann"
cat > "$out/vendored/json_text.cpp" <<'CPP'
#include <kvbm/json_text.hpp>
int main() {
    const auto b = kvbm::json::parse_batch(R"({"events":"Shutdown","instance_id":340282366920938463463374607431768211455})",
                                           kvbm::JsonFlavor::kvbm_1_2);
    return b && b->instance_id == kvbm::Uint128::max() ? 0 : 1;
}
CPP
${CXX:-g++} -std=c++20 -Wall -Wextra -Werror -I "$out/vendored/third_party" \
  "$out/vendored/json_text.cpp" -o "$out/vendored/json_text"
"$out/vendored/json_text"
${CXX:-g++} -std=c++20 -I "$out/vendored/third_party" -M "$out/vendored/json_text.cpp" > "$out/vendored/json_deps.txt"
if grep -E "nlohmann|xxhash|zmq|catch2" "$out/vendored/json_deps.txt"; then
  echo "FAIL: <kvbm/json_text.hpp> includes a third-party header"; exit 1
fi
echo "consumers: 6 passed, 0 failed"
