#!/usr/bin/env python3
"""Makes the golden fixtures for Tessera's model tests with Hugging Face transformers.

For each architecture it builds a tiny random-weight checkpoint, saves it as safetensors
(Hugging Face layout) and as GGUF (F32, and quantized types written by gguf-py, with the
Q/K row permutation llama.cpp's converter applies to llama-family weights), then records
transformers' logits for fixed prompts and its greedy continuation. For quantized GGUFs
the reference is transformers run on the weights gguf-py dequantizes back, so every
expected number comes from transformers, not from Tessera.

Needs: pip install torch transformers gguf safetensors numpy  (not needed to run tests)
Usage: python3 tools/golden/make_golden.py [OUT_DIR]   (default tests/data/golden)
"""
import importlib.metadata
import json
import os
import sys

import numpy as np
import torch
import transformers
import gguf
from gguf import GGMLQuantizationType as QT

PROMPTS = [[1, 17, 42, 99, 5, 250, 31, 7, 64, 128, 3], [9, 200, 13]]
GREEDY_NEW = 8

# Head counts chosen so tp in {1, 2, 4} divides heads and KV heads where the issue asks.
ARCHS = {
    "llama": dict(
        cls=transformers.LlamaConfig, model_type="llama", gguf_arch="llama", permute=True,
        cfg=dict(hidden_size=64, num_attention_heads=8, num_key_value_heads=4,
                 intermediate_size=128, num_hidden_layers=2, vocab_size=256,
                 max_position_embeddings=128, rope_theta=10000.0, rms_norm_eps=1e-5,
                 tie_word_embeddings=False),
        quants=[QT.Q8_0, QT.Q4_1]),
    "mistral": dict(
        cls=transformers.MistralConfig, model_type="mistral", gguf_arch="llama", permute=True,
        cfg=dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=1,
                 intermediate_size=96, num_hidden_layers=2, vocab_size=256,
                 max_position_embeddings=128, rope_theta=10000.0, rms_norm_eps=1e-5,
                 sliding_window=4, tie_word_embeddings=False, head_dim=16),
        quants=[QT.Q8_0]),
    "qwen2": dict(
        cls=transformers.Qwen2Config, model_type="qwen2", gguf_arch="qwen2", permute=False,
        cfg=dict(hidden_size=96, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=160, num_hidden_layers=2, vocab_size=256,
                 max_position_embeddings=128, rope_theta=1000000.0, rms_norm_eps=1e-6,
                 tie_word_embeddings=True, use_sliding_window=False),
        quants=[QT.Q8_0]),
}


def permute(w, n_head):
    """llama.cpp's converter: rotate-half rows -> adjacent-pair rows, per head."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def unpermute(w, n_head):
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf):
    if hf in HF_TO_GGUF:
        return HF_TO_GGUF[hf]
    parts = hf.split(".")
    return f"blk.{parts[2]}." + LAYER[".".join(parts[3:])]


def build(name, spec):
    torch.manual_seed({"llama": 1, "mistral": 2, "qwen2": 3}[name])
    config = spec["cls"](**spec["cfg"])
    config._attn_implementation = "eager"
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    return model.eval()


def reference(model):
    """Logits for every prompt position and greedy continuations, from transformers."""
    out = {"prompts": PROMPTS, "logits": [], "greedy": []}
    with torch.no_grad():
        for ids in PROMPTS:
            x = torch.tensor([ids])
            out["logits"].append(model(x).logits[0].float().numpy().tolist())
            gen = model.generate(x, max_new_tokens=GREEDY_NEW, do_sample=False,
                                 pad_token_id=0, eos_token_id=None)
            out["greedy"].append(gen[0, len(ids):].tolist())
    return out


def write_gguf(path, name, spec, state, qtype):
    cfg = spec["cfg"]
    arch = spec["gguf_arch"]
    w = gguf.GGUFWriter(path, arch)
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim", cfg["hidden_size"] // n_head)
    w.add_name(f"tessera-golden-{name}")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    if cfg.get("sliding_window") and cfg.get("use_sliding_window", True):
        w.add_sliding_window(cfg["sliding_window"])
    w.add_file_type(0 if qtype == QT.F32 else int(qtype))
    dequantized = {}
    for hf, t in state.items():
        a = t.float().numpy()
        if spec["permute"] and hf.endswith("q_proj.weight"):
            a = permute(a, n_head)
        if spec["permute"] and hf.endswith("k_proj.weight"):
            a = permute(a, n_kv)
        is_matrix = a.ndim == 2
        tq = qtype if is_matrix and qtype != QT.F32 else QT.F32
        if tq == QT.F32:
            w.add_tensor(gguf_name(hf), a.astype(np.float32))
            back = a.astype(np.float32)
        else:
            q = gguf.quants.quantize(a.astype(np.float32), tq)
            w.add_tensor(gguf_name(hf), q, raw_shape=q.shape, raw_dtype=tq)
            back = gguf.quants.dequantize(q, tq).reshape(a.shape)
        if spec["permute"] and hf.endswith("q_proj.weight"):
            back = unpermute(back, n_head)
        if spec["permute"] and hf.endswith("k_proj.weight"):
            back = unpermute(back, n_kv)
        dequantized[hf] = torch.from_numpy(np.ascontiguousarray(back))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dequantized


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..", "tests", "data", "golden")
    for name, spec in ARCHS.items():
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        model = build(name, spec)
        model.save_pretrained(d, safe_serialization=True)
        for f in ("generation_config.json",):
            if os.path.exists(os.path.join(d, f)):
                os.remove(os.path.join(d, f))
        state = {k: v for k, v in model.state_dict().items()}
        if model.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        golden = {"tool": f"transformers=={transformers.__version__} torch=={torch.__version__} "
                          f"gguf=={importlib.metadata.version('gguf')}",
                  "files": {}}
        golden["files"]["hf"] = reference(model)
        for qt in [QT.F32] + spec["quants"]:
            fname = f"model-{qt.name.lower()}.gguf"
            deq = write_gguf(os.path.join(d, fname), name, spec, state, qt)
            if qt == QT.F32:
                continue  # same weights as the safetensors reference
            qmodel = build(name, spec)
            qmodel.load_state_dict(deq, strict=False)
            if model.config.tie_word_embeddings:
                qmodel.tie_weights()
            golden["files"][fname] = reference(qmodel)
        golden["files"]["model-f32.gguf"] = golden["files"]["hf"]
        with open(os.path.join(d, "golden.json"), "w") as f:
            json.dump(golden, f)
        print(name, "->", d, sorted(os.listdir(d)))


if __name__ == "__main__":
    main()
