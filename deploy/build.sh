#!/usr/bin/env bash
# Configures and builds a CMake preset: deploy/build.sh [release|debug|asan|tsan|fuzz] [targets...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# ccache rewrites paths under the checkout as relative, so clones share one cache; objects
# carry no absolute paths (CMakeLists.txt: -ffile-prefix-map), so the build directory need
# not be hashed either, or builds with debug info (asan, tsan, fuzz) would miss in a clone.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
preset=${1:-release}
shift || true
# Configuring again is cheap and picks up preset changes (the .venv interpreter, say).
cmake --preset "$preset" -G Ninja >/dev/null
if (($#)); then
  cmake --build --preset "$preset" --target "$@"
else
  cmake --build --preset "$preset"
fi
