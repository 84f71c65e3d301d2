#!/usr/bin/env bash
# The serving benchmark: `tessera bench serve` against `tessera serve` (SmolLM2-135M-Instruct
# Q4_1, 2 threads) at concurrency 1, 4 and 16 (128 random prompt tokens, 64 generated each),
# beside llama.cpp's llama-server (--parallel 16, same file and threads) under the same
# load shape (bench/serve_http.py); the time to first token at concurrency 1 against
# `tessera bench`'s prefill time for the same prompt length; and the cost of the network hop
# to a coordinator (a `tessera worker` behind `tessera coordinator`) against the embedded
# server. Writes the "Serving over gRPC" section of bench/RESULTS.md (bench/run.sh keeps it).
#
# llama-server is built in the benchmarks' llama.cpp tree (bench/llama_cpp.sh).
#
#   bench/serve.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source deploy/lib.sh

source bench/llama_cpp.sh
version=$llama_version
deploy/setup.sh
build_llama_cpp
deploy/build.sh release tessera
deploy/fetch-model.sh smollm2-135m-instruct >/dev/null
model="$TESSERA_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
tessera=build/release/bin/tessera
if [[ ! -x "$llama_dir/build/bin/llama-server" ]]; then
  cmake -S "$llama_dir/llama.cpp" -B "$llama_dir/build" -DLLAMA_BUILD_SERVER=ON >/dev/null
  cmake --build "$llama_dir/build" -j2 --target llama-server
fi

out=$(mktemp -d)
pids=()
# CPU time the hypervisor took from this VM during the run ("steal"), from /proc/stat.
head -1 /proc/stat > "$out/stat-start"
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"; }
trap cleanup EXIT
export TESSERA_THREADS=2
# start LOG COMMAND...: runs a server in the background and sets $addr to where it listens.
start() {
  local log=$1; shift
  "$@" > /dev/null 2> "$log" &
  pids+=($!)
  for _ in $(seq 1200); do
    addr=$(sed -n 's/.*listening on \([^;]*\);.*/\1/p' "$log")
    if [[ -n "$addr" ]]; then return; fi
    sleep 0.1
  done
  cat "$log" >&2
  die "bench/serve.sh: $* did not start"
}
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }

# Every server runs from the start, and the runs alternate between them level by level:
# on a VM whose share of the CPU drifts (steal), back-to-back runs compare fairly.
start "$out/serve.log" "$tessera" serve -m "$model" --listen 127.0.0.1:0 --max-seqs 16
embedded=$addr
start "$out/coord.log" "$tessera" coordinator -m "$model" --listen 127.0.0.1:0
remote=$addr
"$tessera" worker -m "$model" --coordinator "$remote" --max-seqs 16 > /dev/null 2> "$out/worker.log" &
pids+=($!)
for _ in $(seq 600); do grep -q "registered as" "$out/worker.log" && break; sleep 0.1; done
grep -q "registered as" "$out/worker.log" || { cat "$out/worker.log" >&2; die "the worker did not register"; }
port=$("$TESSERA_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$llama_dir/build/bin/llama-server" -m "$model" -t 2 -tb 2 --parallel 16 -c 4096 \
  --host 127.0.0.1 --port "$port" > "$out/llama-server.log" 2>&1 &
pids+=($!)
"$TESSERA_PYTHON" - "$port" <<'PY' || die "llama-server did not become healthy (see its log)"
import sys, time, urllib.request
for _ in range(600):
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1).status == 200:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
PY

for c in 1 4 16; do
  echo "concurrency $c: tessera bench serve (tessera serve), bench/serve_http.py (llama-server)" >&2
  "$tessera" bench serve --server "$embedded" -c "$c" --input-len 128 --output-len 64 --json \
    > "$out/serve-$c.json"
  "$TESSERA_PYTHON" bench/serve_http.py "http://127.0.0.1:$port" -c "$c" --input-len 128 \
    --output-len 64 --vocab 49152 > "$out/llama-$c.json"
done
echo "tessera: prefill of 128 tokens (tessera bench -c 1 -p 128); embedded vs coordinator + worker" >&2
"$tessera" bench -m "$model" -c 1 -p 128 -n 2 -t 2 -r 5 --json > "$out/prefill.json"
for where in embedded remote; do
  "$tessera" bench serve --server "${!where}" -c 1 -n 32 --input-len 128 --output-len 64 --json \
    > "$out/$where-c1.json"
done
stop_all

head -1 /proc/stat > "$out/stat-end"
section=$("$TESSERA_PYTHON" - "$out" "$version" <<'PY'
import json, os, subprocess, sys
out, version = sys.argv[1], sys.argv[2]
load = lambda n: json.load(open(os.path.join(out, n)))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ours = [load(f"serve-{c}.json")["results"][0] for c in (1, 4, 16)]
llama = [load(f"llama-{c}.json")["results"][0] for c in (1, 4, 16)]
prefill = load("prefill.json")["results"][0]["aggregate_prefill_tokens_per_s"]
emb, rem = load("embedded-c1.json")["results"][0], load("remote-c1.json")["results"][0]  # back to back
# /proc/stat's cpu line: user nice system idle iowait irq softirq steal ...
t0, t1 = ([int(x) for x in open(os.path.join(out, f)).read().split()[1:9]] for f in ("stat-start", "stat-end"))
d = [b - a for a, b in zip(t0, t1)]
steal = 100.0 * d[7] / max(1, sum(d))
print("## Serving over gRPC\n")
print(f"Made by `bench/serve.sh` on {cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores; "
      f"server and load generator share the machine; the hypervisor took {steal:.0f}% of the CPU time "
      "during the run (steal, /proc/stat). SmolLM2-135M-Instruct Q4_1, 2 threads, "
      "128 random prompt tokens and 64 generated tokens (ignore_eos) per request, 4 x the "
      "concurrency requests per level (at least 8) after 2 warm-up requests; the Tessera and "
      "llama-server runs of a level are back to back. Tessera: "
      "`tessera serve --max-seqs 16` driven by `tessera bench serve`; llama.cpp: `llama-server "
      f"--parallel 16 -c 4096` (llama-cpp-python=={version}'s llama.cpp) driven by "
      "`bench/serve_http.py` (HTTP, server-sent events) with the same load shape.\n")
print("| concurrency | Tessera out tok/s | llama-server out tok/s | ratio | Tessera TTFT p50 ms | llama-server TTFT p50 ms | Tessera TPOT p50 ms | llama-server TPOT p50 ms | Tessera errors |")
print("|---|---|---|---|---|---|---|---|---|")
for a, b in zip(ours, llama):
    print(f"| {a['concurrency']:g} | {a['output_tokens_per_s']:.1f} | {b['output_tokens_per_s']:.1f} | "
          f"{a['output_tokens_per_s'] / b['output_tokens_per_s']:.2f} | {a['ttft']['p50_ms']:.1f} | "
          f"{b['ttft']['p50_ms']:.1f} | {a['tpot']['p50_ms']:.2f} | {b['tpot']['p50_ms']:.2f} | "
          f"{', '.join(f'{k} {v}' for k, v in a['errors'].items()) or '-'} |")
pf_ms = 128 / prefill * 1e3
print(f"\nTime to first token at concurrency 1 (p50 of 32 requests): {emb['ttft']['p50_ms']:.1f} ms; "
      f"`tessera bench -c 1 -p 128` prefills 128 tokens in {pf_ms:.1f} ms (x{emb['ttft']['p50_ms'] / pf_ms:.2f}).\n")
print("The network hop to a coordinator: one `tessera worker` behind `tessera coordinator` (two "
      "processes, loopback TCP) against the embedded server (the replica dials its coordinator "
      "through gRPC's in-process channel), concurrency 1, 32 requests each:\n")
print("| | TTFT p50 ms | ITL p50 ms | E2E p50 ms |")
print("|---|---|---|---|")
for name, r in (("embedded", emb), ("coordinator + worker", rem)):
    print(f"| {name} | {r['ttft']['p50_ms']:.2f} | {r['itl']['p50_ms']:.3f} | {r['e2e']['p50_ms']:.1f} |")
print(f"\nPer request the hop adds {rem['ttft']['p50_ms'] - emb['ttft']['p50_ms']:.2f} ms to TTFT p50; "
      f"per streamed token {1e3 * (rem['itl']['p50_ms'] - emb['itl']['p50_ms']):.0f} us to ITL p50.")
PY
)
if [[ -f bench/RESULTS.md ]]; then
  sed -i '/^## Serving over gRPC/,$d' bench/RESULTS.md
  sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' bench/RESULTS.md  # drop trailing blank lines
fi
printf '\n%s\n' "$section" >> bench/RESULTS.md
echo "bench/serve.sh: wrote the serving section of bench/RESULTS.md" >&2
