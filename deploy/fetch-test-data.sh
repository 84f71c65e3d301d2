#!/usr/bin/env bash
# Fetches llama.cpp's tokenizer test vectors (vocab-only GGUFs with .inp/.out files) from
# the llama-cpp-python source distribution on PyPI into $TESSERA_CACHE/llama-vocab, where
# the tokenizer tests read them ($TESSERA_LLAMA_VOCAB_DIR overrides). Only those data files
# are extracted; none of llama.cpp's code is kept. Verified by sha256.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"

version=0.3.36
sdist_sha=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
dest=${TESSERA_LLAMA_VOCAB_DIR:-$TESSERA_CACHE/llama-vocab}
stamp="$dest/.llama-cpp-python-$version"
if [[ -f "$stamp" ]]; then echo "$dest (cached)"; exit 0; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The vectors ship only in the source archive.
pip_fetch_sdist "$tmp" "llama-cpp-python==$version"
sdist="$tmp/llama_cpp_python-$version.tar.gz"
[[ -f "$sdist" ]] || die "llama-cpp-python sdist not served"
verify_sha256 "$sdist" "$sdist_sha"
mkdir -p "$dest"
tar -xzf "$sdist" -C "$dest" --strip-components=4 --wildcards \
  "llama_cpp_python-$version/vendor/llama.cpp/models/ggml-vocab-*"
touch "$stamp"
echo "$dest ($(ls "$dest" | wc -l) files)"
