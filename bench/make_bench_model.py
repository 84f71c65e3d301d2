#!/usr/bin/env python3
"""Writes random-weight GGUFs for the benchmarks, Q8_0, far beyond the caches:
  moe    Mixtral-shaped: 4 layers, hidden 1024, 8 experts of FFN 2816, top-2 (~310 MB), so a
         decode step's memory traffic shows whether only the routed experts are read;
  dense  Llama-shaped: 8 layers, hidden 1024, 16 heads, 4 KV heads, FFN 2816 (~100 MB), whose
         head counts allow tp = 1, 2, 4 (SmolLM2's 9 heads allow only 1 and 3).

Needs: pip install gguf numpy.   Usage: make_bench_model.py moe|dense OUT.gguf
"""
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

H, HEADS, KV, F, V, CTX = 1024, 16, 4, 2816, 8192, 4096


def main():
    kind, out = sys.argv[1], sys.argv[2]
    moe = kind == "moe"
    LAYERS, E, K = (4, 8, 2) if moe else (8, 0, 0)
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(out, "llama")
    w.add_name(f"tessera-bench-{kind}")
    w.add_context_length(CTX)
    w.add_embedding_length(H)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(F)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(V)
    if moe:
        w.add_expert_count(E)
        w.add_expert_used_count(K)
    w.add_file_type(int(QT.Q8_0))

    def rand(*shape):
        return (0.02 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)

    def q8(name, a):
        q = gguf.quants.quantize(a, QT.Q8_0)
        w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=QT.Q8_0)

    q8("token_embd.weight", rand(V, H))
    w.add_tensor("output_norm.weight", np.ones(H, dtype=np.float32))
    q8("output.weight", rand(V, H))
    D = H // HEADS
    for l in range(LAYERS):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", np.ones(H, dtype=np.float32))
        w.add_tensor(p + "ffn_norm.weight", np.ones(H, dtype=np.float32))
        q8(p + "attn_q.weight", rand(HEADS * D, H))
        q8(p + "attn_k.weight", rand(KV * D, H))
        q8(p + "attn_v.weight", rand(KV * D, H))
        q8(p + "attn_output.weight", rand(H, HEADS * D))
        if moe:
            w.add_tensor(p + "ffn_gate_inp.weight", rand(E, H))
            q8(p + "ffn_gate_exps.weight", rand(E, F, H))
            q8(p + "ffn_up_exps.weight", rand(E, F, H))
            q8(p + "ffn_down_exps.weight", rand(E, H, F))
        else:
            q8(p + "ffn_gate.weight", rand(F, H))
            q8(p + "ffn_up.weight", rand(F, H))
            q8(p + "ffn_down.weight", rand(H, F))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
