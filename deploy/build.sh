#!/usr/bin/env bash
# Configures (once) and builds a CMake preset: deploy/build.sh [release|debug|asan] [targets...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# ccache rewrites paths under the checkout as relative, so clones share one cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
preset=${1:-release}
shift || true
if [[ ! -f "build/$preset/CMakeCache.txt" ]]; then
  cmake --preset "$preset" -G Ninja
fi
if (($#)); then
  cmake --build --preset "$preset" --target "$@"
else
  cmake --build --preset "$preset"
fi
