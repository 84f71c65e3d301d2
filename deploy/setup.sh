#!/usr/bin/env bash
# Installs everything Tessera needs to build and test on a fresh Debian 12 machine.
# Idempotent: packages already present are not reinstalled, and apt's index is refreshed
# only when something is missing. Fails loudly on any error. Run as root (or with sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git python3 python3-pip unzip
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
command -v pip3 >/dev/null || command -v pip >/dev/null ||
  { echo "setup: pip missing after install" >&2; exit 1; }
