#!/usr/bin/env python3
"""The same model on every valid tensor-parallel layout, across real MPI processes.

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


def generate(model, world, *extra):
    """Runs one generation on `world` processes; returns (json, logits, per-rank bytes)."""
    with tempfile.TemporaryDirectory() as d:
        npy = os.path.join(d, "logits.npy")
        cmd = [TESSERA, "generate", "-m", model, "-p", PROMPT, "-n", "8", "--json",
               "--dump-logits", npy, "--timeout", "20", *extra]
        if world > 1:
            cmd = [MPIEXEC, *MPI_FLAGS, "-np", str(world)] + cmd + ["--tp", str(world)]
        p = subprocess.run(cmd, capture_output=True, env=ENV, timeout=120)
        err = p.stderr.decode()
        if p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{err}")
        ranks = {int(m.group(1)): int(m.group(2))
                 for m in re.finditer(r"^rank (\d+)/\d+: .*; weights (\d+) bytes", err, re.M)}
        return json.loads(p.stdout), np.load(npy), ranks


class TensorParallel(unittest.TestCase):
    def check(self, model, worlds, max_share=1.05):
        want, want_logits, single = generate(model, 1)
        for w in worlds:
            with self.subTest(model=model, tp=w):
                got, logits, ranks = generate(model, w)
                self.assertEqual(got["prompt_ids"], want["prompt_ids"])
                self.assertEqual(got["ids"], want["ids"], "greedy tokens differ")
                err = np.abs(logits - want_logits).max() / np.abs(want_logits).max()
                print(f"{os.path.relpath(model, DATA)} tp={w}: max relative logit error {err:.2e}; "
                      f"rank weights {sorted(ranks.values())} vs {single[0]} on one process")
                self.assertLess(err, 1e-4)
                self.assertEqual(sorted(ranks), list(range(w)), "every rank prints a start line")
                for r, b in ranks.items():
                    self.assertLessEqual(b, single[0] / w * max_share, f"rank {r} holds too much")

    def test_llama_gqa(self):  # 8 heads, 4 KV heads
        self.check(os.path.join(DATA, "golden", "llama"), [2, 4])
        self.check(os.path.join(DATA, "golden", "llama", "model-f32.gguf"), [2, 4])
        self.check(os.path.join(DATA, "golden", "llama", "model-q8_0.gguf"), [2])

    def test_mqa_kv_heads_replicated(self):  # 4 heads, 1 KV head: tp > KV heads
        # Replicated KV projections and norms: a rank holds up to a third more than 1/W.
        self.check(os.path.join(DATA, "golden", "mistral"), [2, 4], max_share=1.35)

    def test_qwen2_bias_tied_head(self):  # 4 heads, 2 KV heads (replicated at tp=4)
        self.check(os.path.join(DATA, "golden", "qwen2"), [2, 4], max_share=1.2)

    def test_smollm2_tp3(self):  # 9 heads, 3 KV heads
        self.check("smollm2-135m-instruct", [3], max_share=1.01)

    def test_invalid_layout_is_refused_with_valid_values(self):
        p = subprocess.run([MPIEXEC, *MPI_FLAGS, "-np", "2", TESSERA, "generate", "-m",
                            "smollm2-135m-instruct", "-p", "Hi", "--tp", "2"],
                           capture_output=True, env=ENV, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        # 9 heads, 3 KV heads, FFN 1536: tp 9 would not divide the FFN.
        self.assertIn("valid tp for this model: 1, 3\n", p.stderr.decode())


if __name__ == "__main__":
    TESSERA, MPIEXEC = sys.argv.pop(1), sys.argv.pop(1)
    unittest.main(verbosity=2)
