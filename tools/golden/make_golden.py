#!/usr/bin/env python3
"""Makes the golden fixtures for Tessera's model tests with Hugging Face transformers.

For each architecture it builds a tiny random-weight checkpoint, saves it as safetensors
(Hugging Face layout) and as GGUF (F32, and quantized types written by gguf-py, with the
Q/K row permutation llama.cpp's converter applies to llama-family weights), then records
transformers' logits for fixed prompts and its greedy continuation. For quantized GGUFs
the reference is transformers run on the weights gguf-py dequantizes back, so every
expected number comes from transformers, not from Tessera.

Needs: pip install torch transformers gguf safetensors numpy  (not needed to run tests)
Usage: python3 tools/golden/make_golden.py [OUT_DIR [ARCH ...]]   (default tests/data/golden, every
       architecture; name some to remake only those, leaving the others' fixtures as they are)
"""
import importlib.metadata
import json
import os
import sys
import tempfile

import numpy as np
import torch
import transformers
import gguf
import safetensors.torch
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
    "mixtral": dict(
        cls=transformers.MixtralConfig, model_type="mixtral", gguf_arch="llama", permute=True,
        cfg=dict(hidden_size=64, num_attention_heads=8, num_key_value_heads=4,
                 intermediate_size=64, num_hidden_layers=2, vocab_size=256,
                 max_position_embeddings=128, rope_theta=1000000.0, rms_norm_eps=1e-5,
                 num_local_experts=4, num_experts_per_tok=2, tie_word_embeddings=False,
                 sliding_window=None),
        quants=[QT.Q8_0]),
    "qwen2_moe": dict(
        cls=transformers.Qwen2MoeConfig, model_type="qwen2_moe", gguf_arch="qwen2moe",
        permute=False,
        cfg=dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=96, moe_intermediate_size=32,
                 shared_expert_intermediate_size=64, num_experts=8, num_experts_per_tok=2,
                 norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[],
                 num_hidden_layers=2, vocab_size=256, max_position_embeddings=128,
                 rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
                 use_sliding_window=False),
        quants=[QT.Q8_0]),
    "qwen3_moe": dict(
        cls=transformers.Qwen3MoeConfig, model_type="qwen3_moe", gguf_arch="qwen3moe",
        permute=False,
        cfg=dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                 intermediate_size=96, moe_intermediate_size=32, num_experts=8,
                 num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1,
                 mlp_only_layers=[], num_hidden_layers=2, vocab_size=256,
                 max_position_embeddings=128, rope_theta=1000000.0, rms_norm_eps=1e-6,
                 tie_word_embeddings=False, use_sliding_window=False),
        quants=[QT.Q8_0]),
    # Llama 3.1-style RoPE scaling (rope_type llama3) with an original context of 32, so the
    # golden prompts' positions reach the scaled frequencies. Its GGUFs carry the scaling as
    # rope_freqs.weight, as llama.cpp's converter writes it, and no scaling metadata.
    "llama31": dict(
        cls=transformers.LlamaConfig, model_type="llama", gguf_arch="llama", permute=True,
        rope_freqs=True,
        cfg=dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                 intermediate_size=128, num_hidden_layers=2, vocab_size=256,
                 max_position_embeddings=128, rope_theta=10000.0, rms_norm_eps=1e-5,
                 tie_word_embeddings=False,
                 rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                   high_freq_factor=4.0, original_max_position_embeddings=32)),
        quants=[QT.Q8_0]),
    "qwen3": dict(
        cls=transformers.Qwen3Config, model_type="qwen3", gguf_arch="qwen3", permute=False,
        cfg=dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                 intermediate_size=96, num_hidden_layers=2, vocab_size=256,
                 max_position_embeddings=128, rope_theta=1000000.0, rms_norm_eps=1e-6,
                 tie_word_embeddings=False, use_sliding_window=False),
        quants=[QT.Q8_0]),
    # A vocabulary that no tp > 1 divides (389 is prime), with heads and FFN that tp 2 and 4
    # do: vocab-parallel layers pad their last shard. The tokenizer keeps 256 byte tokens.
    "llama_uneven": dict(
        cls=transformers.LlamaConfig, model_type="llama", gguf_arch="llama", permute=True,
        cfg=dict(hidden_size=64, num_attention_heads=8, num_key_value_heads=4,
                 intermediate_size=136, num_hidden_layers=2, vocab_size=389,
                 max_position_embeddings=128, rope_theta=10000.0, rms_norm_eps=1e-5,
                 tie_word_embeddings=False),
        quants=[]),
    # Gemma 3: six layers, so the default pattern (every sixth layer global) has both kinds;
    # a window of 4 the 11-token prompt crosses; local and global RoPE bases differ, and
    # linear RoPE scaling applies to the global layer only. query_pre_attn_scalar is the
    # head dim, as in every Gemma 3 but 27B (GGUF files cannot say otherwise).
    "gemma3": dict(
        cls=getattr(transformers, "Gemma3TextConfig", None), model_type="gemma3_text",
        gguf_arch="gemma3", permute=False, norm_shift=1.0,
        cfg=dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                 intermediate_size=128, num_hidden_layers=6, vocab_size=256,
                 max_position_embeddings=128, rope_theta=1000000.0, rope_local_base_freq=10000.0,
                 rms_norm_eps=1e-6, sliding_window=4, query_pre_attn_scalar=32,
                 hidden_activation="gelu_pytorch_tanh", final_logit_softcapping=None,
                 attn_logit_softcapping=None, tie_word_embeddings=True,
                 rope_scaling=dict(rope_type="linear", factor=2.0)),
        layer_names={"post_attention_layernorm.weight": "post_attention_norm.weight",
                     "pre_feedforward_layernorm.weight": "ffn_norm.weight",
                     "post_feedforward_layernorm.weight": "post_ffw_norm.weight"},
        quants=[QT.Q8_0]),
    # DeepSeek-V3: latent attention with the query's low-rank pair (r 64, RoPE 16, no-RoPE
    # 32, values 32: Q8_0 needs rows of whole 32-blocks, k_b's rows are the no-RoPE dims),
    # one dense layer then two MoE layers: 8 experts in 4 groups (2 kept), top-2, a shared
    # expert, sigmoid scores with a random selection bias, scaled by 2.5; YaRN RoPE as
    # DeepSeek-V3 and Kimi-K2 ship it (mscale = mscale_all_dim: no cos/sin factor, scores
    # scaled by mscale^2), from a pre-training context of 32 stretched 4x. The GGUF is laid out
    # as llama.cpp's converter writes deepseek2 now (kv_b split into k_b, transposed per
    # head, and v_b; the cache row as one KV head of r + RoPE dims).
    "deepseek_v3": dict(
        cls=getattr(transformers, "DeepseekV3Config", None), model_type="deepseek_v3",
        gguf_arch="deepseek2", permute=False, mla=True,
        cfg=dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=4,
                 intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=3,
                 first_k_dense_replace=1, n_routed_experts=8, n_shared_experts=1,
                 num_experts_per_tok=2, n_group=4, topk_group=2, routed_scaling_factor=2.5,
                 norm_topk_prob=True, q_lora_rank=64, kv_lora_rank=64, qk_rope_head_dim=16,
                 qk_nope_head_dim=32, v_head_dim=32, vocab_size=256,
                 max_position_embeddings=128, rms_norm_eps=1e-6,
                 rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0,
                                      original_max_position_embeddings=32, beta_fast=32,
                                      beta_slow=1, mscale=1.0, mscale_all_dim=1.0),
                 rope_interleave=True, attention_bias=False, tie_word_embeddings=False),
        quants=[QT.Q8_0]),
    # The other DeepSeek layouts: the query projected directly (no q_lora_rank, as in
    # DeepSeek-V2-Lite), no RoPE scaling, and a GGUF in llama.cpp's older deepseek2 layout
    # (one attn_kv_b tensor; key_length / value_length per head, head_count_kv = heads).
    "deepseek_v3_direct_q": dict(
        cls=getattr(transformers, "DeepseekV3Config", None), model_type="deepseek_v3",
        gguf_arch="deepseek2", permute=False, mla=True, mla_legacy_gguf=True,
        cfg=dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=4,
                 intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=2,
                 first_k_dense_replace=1, n_routed_experts=4, n_shared_experts=2,
                 num_experts_per_tok=2, n_group=2, topk_group=1, routed_scaling_factor=1.5,
                 norm_topk_prob=False, q_lora_rank=None, kv_lora_rank=32, qk_rope_head_dim=16,
                 qk_nope_head_dim=32, v_head_dim=32, vocab_size=256,
                 max_position_embeddings=128, rope_theta=10000.0, rms_norm_eps=1e-6,
                 rope_interleave=True, attention_bias=False, tie_word_embeddings=False),
        quants=[QT.Q8_0]),
}


def llama3_rope_factors(cfg):
    """The per-pair divisors of the RoPE frequencies that llama.cpp's converter derives from
    a llama3 rope_scaling config (GGUF tensor rope_freqs.weight): 1 for wavelengths shorter
    than original_context / high_freq_factor, `factor` for those longer than
    original_context / low_freq_factor, and the smooth interpolation between."""
    rs = cfg["rope_scaling"]
    dim = cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    old = rs["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / rs["low_freq_factor"], old / rs["high_freq_factor"]
    factors = []
    for i in range(0, dim, 2):
        freq = 1.0 / (cfg["rope_theta"] ** (i / dim))
        wavelen = 2 * np.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(rs["factor"])
        else:
            smooth = (old / wavelen - rs["low_freq_factor"]) / (rs["high_freq_factor"] - rs["low_freq_factor"])
            factors.append(1.0 / ((1 - smooth) / rs["factor"] + smooth))
    return np.array(factors, dtype=np.float32)


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
    "block_sparse_moe.gate.weight": "ffn_gate_inp.weight",
    "mlp.gate.weight": "ffn_gate_inp.weight",
    "mlp.shared_expert_gate.weight": "ffn_gate_inp_shexp.weight",
    "mlp.shared_expert.gate_proj.weight": "ffn_gate_shexp.weight",
    "mlp.shared_expert.up_proj.weight": "ffn_up_shexp.weight",
    "mlp.shared_expert.down_proj.weight": "ffn_down_shexp.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
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
    # DeepSeek: latent attention, the router's selection bias, the shared experts.
    "self_attn.q_a_proj.weight": "attn_q_a.weight",
    "self_attn.q_a_layernorm.weight": "attn_q_a_norm.weight",
    "self_attn.q_b_proj.weight": "attn_q_b.weight",
    "self_attn.kv_a_proj_with_mqa.weight": "attn_kv_a_mqa.weight",
    "self_attn.kv_a_layernorm.weight": "attn_kv_a_norm.weight",
    "self_attn.kv_b_proj.weight": "attn_kv_b.weight",
    "mlp.gate.e_score_correction_bias": "exp_probs_b.bias",
    "mlp.shared_experts.gate_proj.weight": "ffn_gate_shexp.weight",
    "mlp.shared_experts.up_proj.weight": "ffn_up_shexp.weight",
    "mlp.shared_experts.down_proj.weight": "ffn_down_shexp.weight",
}


# Per-expert HF tensors, stacked into one GGUF tensor per layer and projection.
EXPERT = {"w1": "ffn_gate_exps", "w3": "ffn_up_exps", "w2": "ffn_down_exps",
          "gate_proj": "ffn_gate_exps", "up_proj": "ffn_up_exps", "down_proj": "ffn_down_exps"}


def stack_experts(state):
    """{hf name: tensor} -> {gguf-ready name: array}, per-expert tensors stacked [E, ...]."""
    out, experts = {}, {}
    for hf, t in state.items():
        parts = hf.split(".")
        if "experts" in parts:
            i = parts.index("experts")
            layer, e, proj = parts[2], int(parts[i + 1]), parts[i + 2]
            experts.setdefault((layer, EXPERT[proj]), {})[e] = t
        else:
            out[hf] = t
    for (layer, name), by_e in experts.items():
        out[f"blk.{layer}.{name}.weight"] = np.stack([by_e[e] for e in sorted(by_e)])
    return out


def gguf_name(hf, spec=None):
    if hf.startswith("blk."):
        return hf
    if hf in HF_TO_GGUF:
        return HF_TO_GGUF[hf]
    parts = hf.split(".")
    suffix = ".".join(parts[3:])
    return f"blk.{parts[2]}." + ((spec or {}).get("layer_names", {}).get(suffix) or LAYER[suffix])


def byte_symbols():
    """The golden vocabulary: token i is byte i in GPT-2's byte -> character map, except
    token 255 (byte 0xFF, which never occurs in UTF-8) is the merge of " " and "t", so the
    vocabulary has one merge (GGUF files cannot hold an empty merges array)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = iter(range(256, 512))
    symbols = [chr(b) if b in keep else chr(next(extra)) for b in range(256)]
    symbols[255] = symbols[ord(" ")] + "t"
    return symbols


def byte_merges():
    return [byte_symbols()[ord(" ")] + " t"]


def write_tokenizer_json(d):
    """A byte-level BPE tokenizer with no merges: 256 tokens, one per byte, so the tiny
    golden models (vocab 256) can be driven with text by `tessera generate`."""
    vocab = {sym: i for i, sym in enumerate(byte_symbols())}
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
           "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                             "use_regex": True},
           "post_processor": None,
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                       "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None,
                     "continuing_subword_prefix": None, "end_of_word_suffix": None,
                     "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": vocab, "merges": byte_merges()}}
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tok, f)


def build(name, spec):
    torch.manual_seed(list(ARCHS).index(name) + 1)
    config = spec["cls"](**spec["cfg"])
    config._attn_implementation = "eager"
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:  # a scale near 1 (Gemma's weights hold the scale minus 1)
                p.copy_(1.0 - spec.get("norm_shift", 0.0) + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
        for bname, b in model.named_buffers():
            if bname.endswith("e_score_correction_bias"):
                # Non-negative, so no kept group's expert scores below the -inf mask.
                b.copy_(0.05 * torch.rand_like(b))
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
    if spec.get("mla"):
        # llama.cpp's deepseek2 layout: the cache row is one KV head of r + RoPE dims.
        r, rope = cfg["kv_lora_rank"], cfg["qk_rope_head_dim"]
        if spec.get("mla_legacy_gguf"):
            w.add_head_count_kv(n_head)
            w.add_key_length(cfg["qk_nope_head_dim"] + rope)
            w.add_value_length(cfg["v_head_dim"])
        else:
            w.add_head_count_kv(1)
            w.add_key_length(r + rope)
            w.add_value_length(r)
            w.add_key_length_mla(cfg["qk_nope_head_dim"] + rope)
            w.add_value_length_mla(cfg["v_head_dim"])
        w.add_kv_lora_rank(r)
        if cfg.get("q_lora_rank"):
            w.add_q_lora_rank(cfg["q_lora_rank"])
        w.add_rope_dimension_count(rope)
        w.add_leading_dense_block_count(cfg["first_k_dense_replace"])
        w.add_expert_shared_count(cfg["n_shared_experts"])
        w.add_expert_weights_scale(cfg["routed_scaling_factor"])
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
        w.add_expert_group_count(cfg["n_group"])
        w.add_expert_group_used_count(cfg["topk_group"])
    else:
        w.add_head_count_kv(n_kv)
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_rope_freq_base(cfg["rope_theta"] if "rope_theta" in cfg else cfg["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    if cfg.get("sliding_window") and cfg.get("use_sliding_window", True):
        w.add_sliding_window(cfg["sliding_window"])
    n_experts = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts")
    if n_experts:
        w.add_expert_count(n_experts)
        w.add_expert_used_count(cfg["num_experts_per_tok"])
        if "moe_intermediate_size" in cfg:
            w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
        if "shared_expert_intermediate_size" in cfg:
            w.add_expert_shared_feed_forward_length(cfg["shared_expert_intermediate_size"])
        if "norm_topk_prob" in cfg:
            w.add_expert_weights_norm(cfg["norm_topk_prob"])
    w.add_file_type(0 if qtype == QT.F32 else int(qtype))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(byte_symbols())
    w.add_token_types([1] * 256)
    w.add_token_merges(byte_merges())
    w.add_add_bos_token(False)
    if spec.get("rope_freqs"):
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(cfg))
    rs = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    if rs.get("rope_type") == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(rs["factor"])
    if rs.get("rope_type") == "yarn":  # as llama.cpp's deepseek2 converter writes it
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(rs["factor"])
        w.add_rope_scaling_orig_ctx_len(rs["original_max_position_embeddings"])
        w.add_rope_scaling_yarn_log_mul(0.1 * rs["mscale_all_dim"])
    dequantized = {}
    arrays = stack_experts({k: v.float().numpy() for k, v in state.items()})
    if spec.get("mla") and not spec.get("mla_legacy_gguf"):
        # kv_b [Hq*(N+Dv), r] -> k_b [Hq, r, N] (each head's key rows, transposed) and
        # v_b [Hq, Dv, r], as llama.cpp's converter writes them.
        nope, dv = cfg["qk_nope_head_dim"], cfg["v_head_dim"]
        for hf in [k for k in arrays if k.endswith("kv_b_proj.weight")]:
            kv_b = arrays.pop(hf).reshape(n_head, nope + dv, -1)
            layer = hf.split(".")[2]
            arrays[f"blk.{layer}.attn_k_b.weight"] = np.ascontiguousarray(kv_b[:, :nope].transpose(0, 2, 1))
            arrays[f"blk.{layer}.attn_v_b.weight"] = np.ascontiguousarray(kv_b[:, nope:])
    for hf, a in arrays.items():
        if spec["permute"] and hf.endswith("q_proj.weight"):
            a = permute(a, n_head)
        if spec["permute"] and hf.endswith("k_proj.weight"):
            a = permute(a, n_kv)
        if hf.endswith("shared_expert_gate.weight"):
            a = a.reshape(-1)  # llama.cpp stores the shared-expert gate as [H]
        is_matrix = a.ndim >= 2 and "ffn_gate_inp.weight" not in gguf_name(hf, spec)
        tq = qtype if is_matrix and qtype != QT.F32 else QT.F32
        if tq == QT.F32:
            # Gemma's converter stores a norm weight w as the scale it stands for, 1 + w.
            shift = spec.get("norm_shift", 0.0) if hf.endswith("norm.weight") else 0.0
            w.add_tensor(gguf_name(hf, spec), (a + shift).astype(np.float32))
            back = a.astype(np.float32)
        else:
            q = gguf.quants.quantize(a.astype(np.float32), tq)
            w.add_tensor(gguf_name(hf, spec), q, raw_shape=q.shape, raw_dtype=tq)
            back = gguf.quants.dequantize(q, tq).reshape(a.shape)
        if spec["permute"] and hf.endswith("q_proj.weight"):
            back = unpermute(back, n_head)
        if spec["permute"] and hf.endswith("k_proj.weight"):
            back = unpermute(back, n_kv)
        if hf.endswith(("attn_k_b.weight", "attn_v_b.weight")):
            dequantized[hf] = back  # rejoined into kv_b below
            continue
        if hf.startswith("blk."):  # stacked experts: back to per-expert HF names
            layer, name = hf.split(".")[1], hf.split(".")[2]
            for e in range(back.shape[0]):
                for hf_name in state:
                    p = hf_name.split(".")
                    if ("experts" in p and p[2] == layer and int(p[p.index("experts") + 1]) == e
                            and EXPERT[p[p.index("experts") + 2]] == name):
                        dequantized[hf_name] = torch.from_numpy(np.ascontiguousarray(back[e]))
            continue
        if hf.endswith("shared_expert_gate.weight"):
            back = back.reshape(1, -1)
        dequantized[hf] = torch.from_numpy(np.ascontiguousarray(back))
    for hf in [k for k in dequantized if k.endswith("attn_k_b.weight")]:
        layer = hf.split(".")[1]
        k_b = dequantized.pop(hf).transpose(0, 2, 1)
        v_b = dequantized.pop(f"blk.{layer}.attn_v_b.weight")
        kv_b = np.concatenate([k_b, v_b], axis=1).reshape(-1, k_b.shape[-1])
        dequantized[f"model.layers.{layer}.self_attn.kv_b_proj.weight"] = torch.from_numpy(
            np.ascontiguousarray(kv_b.astype(np.float32)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dequantized


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..", "tests", "data", "golden")
    only = set(sys.argv[2:])
    for name, spec in ARCHS.items():
        if only and name not in only:
            continue
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        model = build(name, spec)
        model.save_pretrained(d, safe_serialization=True)
        write_tokenizer_json(d)
        for f in ("generation_config.json",):
            if os.path.exists(os.path.join(d, f)):
                os.remove(os.path.join(d, f))
        state = safetensors.torch.load_file(os.path.join(d, "model.safetensors"))
        state.pop("lm_head.weight", None) if model.config.tie_word_embeddings else None
        golden = {"tool": f"transformers=={transformers.__version__} torch=={torch.__version__} "
                          f"gguf=={importlib.metadata.version('gguf')}",
                  "files": {}}
        golden["files"]["hf"] = reference(model)
        for qt in [QT.F32] + spec["quants"]:
            fname = f"model-{qt.name.lower()}.gguf"
            deq = write_gguf(os.path.join(d, fname), name, spec, state, qt)
            if qt == QT.F32:
                continue  # same weights as the safetensors reference
            with tempfile.TemporaryDirectory() as tmp:
                model.config.save_pretrained(tmp)
                safetensors.torch.save_file(deq, os.path.join(tmp, "model.safetensors"),
                                            metadata={"format": "pt"})
                qmodel = transformers.AutoModelForCausalLM.from_pretrained(
                    tmp, attn_implementation="eager").eval()
                golden["files"][fname] = reference(qmodel)
        golden["files"]["model-f32.gguf"] = golden["files"]["hf"]
        with open(os.path.join(d, "golden.json"), "w") as f:
            json.dump(golden, f)
        print(name, "->", d, sorted(os.listdir(d)))


if __name__ == "__main__":
    main()
