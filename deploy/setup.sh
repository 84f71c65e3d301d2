#!/usr/bin/env bash
# Installs everything Tessera needs to build and test on a fresh Debian 12 machine:
# Debian packages, then the project's Python environment .venv (from the python3 on PATH,
# with requirements/test.txt installed by hash). Every script and test uses .venv's
# python3; nothing relies on packages installed by hand.
#   deploy/setup.sh              packages + .venv with requirements/test.txt
#   deploy/setup.sh --fixtures   also requirements/fixtures.txt (torch, transformers, ...)
# Idempotent: packages already present are not reinstalled, apt's index is refreshed only
# when something is missing, and .venv is reinstalled only when a requirements file
# changed. Fails loudly on any error. Run as root (or with sudo).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source deploy/lib.sh

fixtures=0
for arg in "$@"; do
  case $arg in
    --fixtures) fixtures=1 ;;
    *) die "setup: unknown argument '$arg' (known: --fixtures)" ;;
  esac
done

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git python3 python3-pip python3-venv unzip
  clang libclang-rt-14-dev                     # libFuzzer + sanitizers (tests/fuzz)
  libopenmpi-dev openmpi-bin                   # MPI: CPU collectives, mpirun
  libgrpc++-dev protobuf-compiler-grpc         # gRPC (coordinator and replicas)
  libprotobuf-dev protobuf-compiler            # Protobuf
  libabsl-dev                                  # abseil: Status, strings
  nlohmann-json3-dev                           # JSON: configs, tokenizer.json
  libpcre2-dev                                 # pre-tokenizer regexes
  libicu-dev                                   # Unicode normalisation (NFC)
  libgtest-dev libgmock-dev                    # GoogleTest
  libbenchmark-dev                             # Google Benchmark
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present" >&2
fi

command -v cmake >/dev/null || { echo "setup: cmake missing after install" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "setup: mpirun missing after install" >&2; exit 1; }

venv_install requirements/test.txt --require-hashes
if ((fixtures)); then venv_install requirements/fixtures.txt; fi
"$TESSERA_PYTHON" -c "import numpy" || die "setup: numpy missing from .venv after install"
"$TESSERA_PYTHON" -c "import grpc, grpc_tools, grpc_health, grpc_reflection" ||
  die "setup: grpcio packages missing from .venv after install"

# The Python client's stubs (and the Replica protocol's, for the tests), from our protos
# (into clients/python/tessera_client/_proto, not in git).
proto_out=clients/python/tessera_client/_proto
rm -rf "$proto_out"
mkdir -p "$proto_out"
"$TESSERA_PYTHON" -m grpc_tools.protoc -I rpc/proto --python_out="$proto_out" \
  --grpc_python_out="$proto_out" rpc/proto/tessera/v1/inference.proto \
  rpc/proto/tessera/v1/replica.proto ||
  die "setup: generating the Python client's stubs failed"
