#!/usr/bin/env python3
"""The load shape of `tessera bench serve`, against llama.cpp's llama-server over HTTP.

usage: serve_http.py URL --concurrency 1,4,16 [--input-len 128] [--output-len 64]
                     [--requests N] [--warmup 2] [--vocab V] [--seed S]

Each request is POST /completion with `prompt` as random token ids (from the middle of
the vocabulary, as `tessera bench serve` draws them), n_predict = output-len, ignore_eos,
cache_prompt off and stream on; its server-sent events are timed as `tessera bench serve`
times gRPC events (TTFT to the first event with content, TPOT after it, ITL between
events). Prints one JSON object with the same fields as `tessera bench serve --json`.
"""
import argparse
import http.client
import json
import random
import threading
import time
import urllib.parse


def run_one(url, body):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    start = time.perf_counter()
    conn.request("POST", "/completion", body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    sample = {"ok": resp.status == 200, "code": resp.status, "tokens": 0, "itl": []}
    first = last = None
    for raw in resp:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data: "):
            continue
        event = json.loads(line[6:])
        n = len(event.get("tokens", [])) or (1 if event.get("content") else 0)
        if n and not event.get("stop"):
            now = time.perf_counter()
            if first is None:
                first = now
            else:
                sample["itl"].append(now - last)
            last = now
            sample["tokens"] += n
        if event.get("stop"):
            break
    conn.close()
    sample["e2e"] = time.perf_counter() - start
    if first is not None:
        sample["ttft"] = first - start
        if sample["tokens"] > 1:
            sample["tpot"] = (sample["e2e"] - sample["ttft"]) / (sample["tokens"] - 1)
    return sample


def stats(v):
    if not v:
        return None
    v = sorted(v)
    pct = lambda p: v[min(len(v) - 1, int(p / 100 * len(v)))] * 1e3
    return {"mean_ms": sum(v) / len(v) * 1e3, "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("-c", "--concurrency", default="1,4,16")
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--requests", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)

    def body():
        return {"prompt": [rng.randint(a.vocab // 4, a.vocab // 2) for _ in range(a.input_len)],
                "n_predict": a.output_len, "ignore_eos": True, "cache_prompt": False,
                "stream": True, "temperature": 0}

    for _ in range(a.warmup):
        run_one(a.url, body())
    results = []
    for level in [int(x) for x in a.concurrency.split(",")]:
        n = a.requests or max(8, 4 * level)
        bodies = [body() for _ in range(n)]
        samples = [None] * n
        nxt = iter(range(n))
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    i = next(nxt, None)
                if i is None:
                    return
                samples[i] = run_one(a.url, bodies[i])

        start = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(level)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        ok = [s for s in samples if s["ok"]]
        errors = {}
        for s in samples:
            if not s["ok"]:
                errors[f"HTTP {s['code']}"] = errors.get(f"HTTP {s['code']}", 0) + 1
        results.append({
            "concurrency": level, "requests": n, "completed": len(ok), "errors": errors,
            "duration_s": wall, "requests_per_s": len(ok) / wall,
            "output_tokens_per_s": sum(s["tokens"] for s in samples) / wall,
            "ttft": stats([s["ttft"] for s in ok if "ttft" in s]),
            "tpot": stats([s["tpot"] for s in ok if "tpot" in s]),
            "itl": stats([x for s in ok for x in s["itl"]]),
            "e2e": stats([s["e2e"] for s in ok])})
    print(json.dumps({"server": a.url, "input_len": a.input_len, "output_len": a.output_len,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
