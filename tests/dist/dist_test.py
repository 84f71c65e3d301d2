#!/usr/bin/env python3
"""The same model on every valid layout (tp, ep, tp x ep), across real MPI processes.

Each case runs `mpirun -np W tessera generate --tp W` and compares rank 0's prompt logits
(--dump-logits) and greedy tokens with a single process, and checks that every rank holds
only its shard of the weights (the start line each rank prints).

usage: dist_test.py PATH/TO/tessera PATH/TO/mpiexec
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import numpy as np

TESSERA = MPIEXEC = None
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
MPI_FLAGS = ["--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader",
             "--mca", "btl_vader_single_copy_mechanism", "none"]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
PROMPT = "Hello, the experts said"


def generate(model, world, *extra, tp=None, ep=1):
    """Runs one generation on `world` processes; returns (json, logits, per-rank bytes).
    The KV cache is f32: these tests check the layouts' arithmetic against one process, and
    16-bit K/V would round tp's differently ordered sums into visible logit differences
    (16-bit K/V under tp is checked by EngineRanksTest.HalfKvTensorParallelMatchesOneProcess)."""
    with tempfile.TemporaryDirectory() as d:
        npy = os.path.join(d, "logits.npy")
        cmd = [TESSERA, "generate", "-m", model, "-p", PROMPT, "-n", "8", "--json",
               "--dump-logits", npy, "--timeout", "20", "--kv-type", "f32", *extra]
        if world > 1:
            cmd = [MPIEXEC, *MPI_FLAGS, "-np", str(world)] + cmd + [
                "--tp", str(world if tp is None else tp), "--ep", str(ep)]
        p = subprocess.run(cmd, capture_output=True, env=ENV, timeout=120)
        err = p.stderr.decode()
        if p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{err}")
        # rank -> (weight bytes, routed expert bytes), from each rank's start line.
        ranks = {int(m.group(1)): (int(m.group(2)), int(m.group(3))) for m in re.finditer(
            r"^rank (\d+)/\d+: .*; weights (\d+) bytes .*routed experts (\d+) bytes", err, re.M)}
        return json.loads(p.stdout), np.load(npy), ranks


class Layouts(unittest.TestCase):
    def check(self, model, worlds, max_share=1.05, layouts=None):
        """Every world in `worlds` as tp = world, or each (world, tp, ep) of `layouts`."""
        want, want_logits, single = generate(model, 1)
        for w, tp, ep in layouts or [(w, w, 1) for w in worlds]:
            with self.subTest(model=model, world=w, tp=tp, ep=ep):
                got, logits, ranks = generate(model, w, tp=tp, ep=ep)
                self.assertEqual(got["prompt_ids"], want["prompt_ids"])
                self.assertEqual(got["ids"], want["ids"], "greedy tokens differ")
                err = np.abs(logits - want_logits).max() / np.abs(want_logits).max()
                if "expert_load" in want:  # every rank routes every token (replicated)
                    self.assertEqual(got["expert_load"], want["expert_load"])
                print(f"{os.path.relpath(model, DATA)} world={w} tp={tp} ep={ep}: max relative "
                      f"logit error {err:.2e}; rank (weights, experts) "
                      f"{sorted(ranks.values())} vs {single[0]} on one process")
                self.assertLess(err, 1e-4)
                self.assertEqual(sorted(ranks), list(range(w)), "every rank prints a start line")
                total, experts = single[0]
                for r, (b, e) in ranks.items():
                    # Routed experts: exactly 1/ep each. The rest: 1/tp of it, up to the
                    # replicated parts (norms, router, shared expert, replicated KV heads).
                    self.assertEqual(e * ep, experts, f"rank {r}: experts not 1/{ep}")
                    self.assertLessEqual(b - e, (total - experts) / tp * max_share,
                                         f"rank {r} holds too much")

    def test_llama_gqa(self):  # 8 heads, 4 KV heads
        self.check(os.path.join(DATA, "golden", "llama"), [2, 4])
        self.check(os.path.join(DATA, "golden", "llama", "model-f32.gguf"), [2, 4])
        self.check(os.path.join(DATA, "golden", "llama", "model-q8_0.gguf"), [2])

    def test_mqa_kv_heads_replicated(self):  # 4 heads, 1 KV head: tp > KV heads
        # Replicated KV projections and norms: a rank holds up to a third more than 1/W.
        self.check(os.path.join(DATA, "golden", "mistral"), [2, 4], max_share=1.35)

    def test_qwen2_bias_tied_head(self):  # 4 heads, 2 KV heads (replicated at tp=4)
        self.check(os.path.join(DATA, "golden", "qwen2"), [2, 4], max_share=1.2)

    def test_qwen3_qk_norm_and_llama31_rope_factors(self):  # 4 heads, 2 KV heads
        # qk-norm weights and the rope_freqs factors are replicated on every rank.
        self.check(os.path.join(DATA, "golden", "qwen3"), [2], max_share=1.2)
        self.check(os.path.join(DATA, "golden", "llama31", "model-f32.gguf"), [2, 4], max_share=1.2)

    def test_gemma3_local_global_layers(self):  # 4 heads, 2 KV heads
        # Four norms per layer and the qk-norms are replicated on every rank.
        self.check(os.path.join(DATA, "golden", "gemma3"), [2], max_share=1.3)
        self.check(os.path.join(DATA, "golden", "gemma3", "model-q8_0.gguf"), [2], max_share=1.3)

    def test_smollm2_tp3(self):  # 9 heads, 3 KV heads
        self.check("smollm2-135m-instruct", [3], max_share=1.01)

    def test_moe_expert_parallel(self):
        # (world, tp, ep): experts split over ep ranks that all see the same tokens; with
        # tp = 1 attention is replicated, so only the experts shrink per rank.
        layouts = [(2, 1, 2), (4, 1, 4), (2, 2, 2)]
        # max_share: the router and Qwen2-MoE's shared expert are replicated on every rank.
        # DeepSeek-V3 also replicates the latent attention's q_a and kv_a projections.
        for arch, share in (("mixtral", 1.1), ("qwen2_moe", 1.5), ("qwen3_moe", 1.1),
                            ("deepseek_v3", 1.3), ("deepseek_v3_direct_q", 1.3)):
            for f in ("", "model-q8_0.gguf"):
                self.check(os.path.join(DATA, "golden", arch, f), [], max_share=share,
                           layouts=layouts)

    def test_stats_count_every_rank_exactly(self):
        """--stats --json gathers every rank's counters; the all-reduce bytes are exactly the
        embedding's and each layer's two row-parallel outputs, [T, H] f32, per forward."""
        got, _, _ = generate(os.path.join(DATA, "golden", "llama"), 2, "--stats")
        with open(os.path.join(DATA, "golden", "llama", "config.json")) as f:
            config = json.load(f)
        hidden, layers = config["hidden_size"], config["num_hidden_layers"]
        tokens = len(got["prompt_ids"]) + len(got["ids"]) - 1  # the last token is not fed back
        self.assertEqual(len(got["stats"]), 2)
        for rank in got["stats"]:
            self.assertEqual(rank["all-reduce"]["bytes"], (1 + 2 * layers) * tokens * hidden * 4)
            self.assertEqual(rank["all-reduce"]["calls"], (1 + 2 * layers) * len(got["ids"]))
            # The leader's messages: the engine's configuration, each step's plan (its size,
            # then its bytes) and the stop plan. No token goes back: only the leader samples.
            self.assertEqual(rank["broadcast"]["calls"], 1 + 2 * len(got["ids"]) + 2)
            # Logits reach the leader only: each rank sends its half of the vocabulary of
            # every row with logits (--dump-logits: every prompt position, then one per
            # decode step) once per step, and nothing is all-gathered.
            self.assertEqual(rank["gather"]["calls"], len(got["ids"]))
            self.assertEqual(rank["gather"]["bytes"],
                             tokens * config["vocab_size"] // 2 * 4)
            self.assertNotIn("all-gather", rank)

    def test_invalid_layout_is_refused_with_valid_values(self):
        p = subprocess.run([MPIEXEC, *MPI_FLAGS, "-np", "2", TESSERA, "generate", "-m",
                            "smollm2-135m-instruct", "-p", "Hi", "--tp", "2"],
                           capture_output=True, env=ENV, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        # 9 heads, 3 KV heads, FFN 1536: tp 9 would not divide the FFN.
        self.assertIn("valid tp for this model: 1, 3\n", p.stderr.decode())


class Batch(unittest.TestCase):
    def test_batch_file_identical_under_mpirun(self):
        """tessera batch: 20 requests on one process and on 3 MPI ranks (SmolLM2, tp 3):
        identical results files; only rank 0 reads and writes them."""
        prompts = os.path.join(DATA, "batch", "prompts.jsonl")
        with tempfile.TemporaryDirectory() as d:
            outs = []
            for world in (1, 3):
                out = os.path.join(d, f"results{world}.jsonl")
                cmd = [TESSERA, "batch", "-m", "smollm2-135m-instruct", "--input", prompts,
                       "--output", out, "--max-seqs", "8", "--quiet", "--timeout", "60"]
                if world > 1:
                    cmd = [MPIEXEC, *MPI_FLAGS, "-np", str(world)] + cmd + ["--tp", str(world)]
                p = subprocess.run(cmd, capture_output=True, env=ENV, timeout=600)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                with open(out, "rb") as f:
                    outs.append(f.read())
            self.assertEqual(outs[0].count(b"\n"), 25)
            self.assertEqual(outs[0], outs[1])

    def test_32_concurrent_requests_on_golden_models_every_layout(self):
        """32 requests of 1 to 100 prompt tokens (blocks of 16 crossed) through tessera batch
        with a KV pool small enough to preempt: the same greedy tokens on one process as on
        tp 2 (llama), ep 2 and tp 2 x ep 2 (mixtral)."""
        import random
        rng = random.Random(5)
        with tempfile.TemporaryDirectory() as d:
            prompts = os.path.join(d, "in.jsonl")
            with open(prompts, "w") as f:
                for i in range(32):
                    n = 1 if i == 0 else 100 if i == 1 else rng.randint(2, 99)
                    ids = [rng.randrange(256) for _ in range(n)]
                    f.write(json.dumps({"id": i, "prompt_ids": ids,
                                        "max_tokens": min(4 + i % 17, 128 - n)}) + "\n")
            for arch, layouts in (("llama", [(2, 2, 1)]), ("mixtral", [(2, 1, 2), (2, 2, 2)])):
                model = os.path.join(DATA, "golden", arch)
                runs = {}
                for w, tp, ep in [(1, 1, 1)] + layouts:
                    out = os.path.join(d, f"{arch}-{w}-{tp}-{ep}.jsonl")
                    # 20 blocks of 16 tokens on one process (160 KiB at 512 bytes per token
                    # of f32 K/V for these models; more blocks where tp halves a rank's KV
                    # heads). f32 so that greedy tokens match exactly across layouts.
                    cmd = [TESSERA, "batch", "-m", model, "--input", prompts, "--output", out,
                           "--max-seqs", "32", "--max-batch-tokens", "48", "--kv-type", "f32",
                           "--kv-cache-memory", "160K", "--timeout", "60"]
                    if w > 1:
                        cmd = [MPIEXEC, *MPI_FLAGS, "-np", str(w)] + cmd + [
                            "--tp", str(tp), "--ep", str(ep)]
                    p = subprocess.run(cmd, capture_output=True, env=ENV, timeout=600)
                    err = p.stderr.decode()
                    self.assertEqual(p.returncode, 0, err)
                    if w == 1:
                        m = re.search(r"(\d+) preemptions", err)
                        self.assertTrue(m and int(m.group(1)) > 0, err)
                    with open(out) as f:
                        runs[(w, tp, ep)] = [json.loads(line) for line in f]
                want = runs[(1, 1, 1)]
                self.assertEqual(len(want), 32)
                self.assertTrue(all("error" not in r for r in want), want)
                for layout, got in runs.items():
                    self.assertEqual([r["ids"] for r in got], [r["ids"] for r in want],
                                     f"{arch} {layout}")


class DeadPeer(unittest.TestCase):
    def test_killed_rank_is_an_error_not_a_hang(self):
        """SIGKILL one rank mid-generation: rank 0 reports the dead peer within the timeout.

        --enable-recovery keeps mpirun from tearing the survivors down first, so what is
        tested is Tessera's own bounded wait, not mpirun's cleanup."""
        import signal
        import time
        cmd = [MPIEXEC, *MPI_FLAGS, "--enable-recovery", "-np", "3", TESSERA, "generate", "-m",
               "smollm2-135m-instruct", "-p", "Once upon a time", "-n", "2000", "--tp", "3",
               "--timeout", "3", "--temperature", "0.8"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        pids, lines = {}, []
        deadline = time.monotonic() + 60
        while len(pids) < 3 and time.monotonic() < deadline:
            line = p.stderr.readline().decode()
            lines.append(line)
            m = re.match(r"rank (\d+)/3: .*, pid (\d+);", line)
            if m:
                pids[int(m.group(1))] = int(m.group(2))
        self.assertEqual(len(pids), 3, "".join(lines))
        time.sleep(1.0)  # let decoding start
        os.kill(pids[2], signal.SIGKILL)
        killed = time.monotonic()
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            self.fail("the replica hung after a rank was killed")
        elapsed = time.monotonic() - killed
        err = "".join(lines) + err.decode()
        # Both survivors report it (under --enable-recovery mpirun's own exit code does not
        # carry theirs, so the messages are what is checked).
        self.assertEqual(len(re.findall(r"tessera generate: [a-z-]+ of .* did not complete "
                                        r"within 3s: a peer is dead or stuck", err)), 2, err)
        self.assertLess(elapsed, 3 + 15, "bounded: the timeout plus process teardown")


if __name__ == "__main__":
    TESSERA, MPIEXEC = sys.argv.pop(1), sys.argv.pop(1)
    unittest.main(verbosity=2)
