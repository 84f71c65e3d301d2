#!/usr/bin/env bash
# Configures and builds a CMake preset: deploy/build.sh [release|debug|asan|tsan|fuzz] [targets...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# ccache rewrites paths under the checkout as relative, so clones share one cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
preset=${1:-release}
shift || true
# Configuring again is cheap and picks up preset changes (the .venv interpreter, say).
cmake --preset "$preset" -G Ninja >/dev/null
if (($#)); then
  cmake --build --preset "$preset" --target "$@"
else
  cmake --build --preset "$preset"
fi
