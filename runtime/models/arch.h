// What distinguishes one decoder-only architecture from another, as data: how its tensors
// are named in each file format, which RoPE layout its GGUF weights use, and which
// optional parts it has. The shared transformer (runtime/engine/transformer.h) reads an
// ArchSpec; adding an architecture is one file defining its spec, one registry line in
// registry.cc, and one golden test.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/rope.h"

namespace tessera {

struct TensorNames {
  // Whole-model tensors.
  std::string embedding, final_norm, lm_head;
  // Per-layer tensors: "{}" is replaced by the layer index.
  std::string attn_norm, q, k, v, o, q_bias, k_bias, v_bias, ffn_norm, gate, up, down;
  std::string q_norm, k_norm;  // per-head RMSNorm of q and k (Qwen3)
  // RMSNorm of the attention and MLP outputs before each residual add (Gemma 3).
  std::string attn_post_norm, ffn_post_norm;
  // Mixture of experts. Hugging Face stores one tensor per expert ("{e}" is the expert
  // index), GGUF one stacked [E, ...] tensor per projection (the "{e}" patterns are empty).
  std::string router, expert_gate, expert_up, expert_down;
  std::string shared_gate, shared_up, shared_down, shared_router;  // Qwen2-MoE shared expert
  std::string router_bias;  // DeepSeek-V3's e_score_correction_bias (selection only)
  // Latent attention (DeepSeek): the query's low-rank pair and its norm (or q, when the
  // query is projected directly); the KV latent with the RoPE key, its norm, and the
  // up-projection of the latent to every head's key and value: one [Hq*(nope+v), r] tensor
  // (kv_b, Hugging Face and older GGUF files) or, as llama.cpp writes it now, the key part
  // transposed per head, k_b [Hq, r, nope], and the value part, v_b [Hq, v, r].
  std::string q_a, q_a_norm, q_b, kv_a, kv_a_norm, kv_b, k_b, v_b;
};

// The MLP's gated activation: SwiGLU, silu(gate) * up, or GeGLU, gelu(gate) * up with
// gelu's tanh approximation (Gemma's gelu_pytorch_tanh).
enum class Activation { kSilu, kGeluTanh };

struct ArchSpec {
  std::string gguf_name;                 // general.architecture in GGUF ("llama")
  std::vector<std::string> hf_types;     // config.json model_type values ("llama")
  bool qkv_bias = false;                 // Qwen2: biases on the Q, K and V projections
  bool sliding_window = false;           // Mistral: attention limited to a window
  // Layout of the Q/K rows the GGUF converter wrote. llama.cpp permutes llama-family
  // Q/K rows so that rotating adjacent pairs equals Hugging Face's rotate-half; other
  // families (Qwen2) are written unpermuted and rotate halves.
  kernels::RopeLayout gguf_rope = kernels::RopeLayout::kAdjacentPairs;
  bool qk_norm = false;            // Qwen3: RMSNorm over each head of q and k before RoPE
  bool norm_topk_default = true;   // renormalise top-k expert weights unless the config says
  Activation activation = Activation::kSilu;
  // Gemma 3: the attention and MLP outputs are RMS-normed before their residual adds
  // (TensorNames attn_post_norm, ffn_post_norm; in HF files the pre-MLP norm is then
  // pre_feedforward_layernorm, and post_attention_layernorm is the attention's post-norm).
  bool post_norms = false;
  bool scale_embedding = false;  // Gemma: embedding rows times sqrt(H) (the LM head unscaled)
  // Gemma: a Hugging Face norm weight w scales by (1 + w); llama.cpp's converter stores
  // 1 + w in GGUF files. Added to every norm weight read from a Hugging Face checkpoint.
  float hf_norm_offset = 0;
  // GGUF files that do not say which layers use the sliding window: every Nth layer
  // (N = this) attends globally, the others locally (0: every layer alike), and the local
  // layers' RoPE base when the file has no {arch}.rope.freq_base_swa (0: the global base).
  int64_t gguf_sliding_pattern = 0;
  double gguf_local_rope_theta = 0;
  // Hugging Face names of this family's MoE tensors (the dense names are shared).
  std::string hf_router = {}, hf_expert_gate = {}, hf_expert_up = {}, hf_expert_down = {};
  // And of its shared expert(s), when they differ from Qwen2-MoE's mlp.shared_expert.*.
  std::string hf_shared_prefix = {};
  // Layout of the Q/K rows of Hugging Face checkpoints (DeepSeek's rope_interleave rotates
  // adjacent pairs).
  kernels::RopeLayout hf_rope = kernels::RopeLayout::kRotateHalf;
};

// A per-layer tensor name: `pattern` (a TensorNames field) with "{}" replaced by `layer`.
std::string LayerName(const std::string& pattern, int64_t layer);

// The standard names of llama.cpp's GGUF converter and of Hugging Face's Llama-family
// checkpoints; architectures change only what differs.
TensorNames GgufTensorNames();
TensorNames HfTensorNames(const ArchSpec& arch);

// Architecture specs, one per file.
const ArchSpec& LlamaArch();
const ArchSpec& MistralArch();
const ArchSpec& Qwen2Arch();
const ArchSpec& MixtralArch();
const ArchSpec& Qwen2MoeArch();
const ArchSpec& Qwen3MoeArch();
const ArchSpec& Qwen3Arch();
const ArchSpec& Gemma3Arch();
const ArchSpec& DeepseekV3Arch();

// The spec for a GGUF general.architecture or an HF model_type; NOT_FOUND lists the known.
absl::StatusOr<const ArchSpec*> FindArch(const std::string& name);

}  // namespace tessera
