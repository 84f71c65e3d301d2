// The hyper-parameters of a transformer checkpoint, read from GGUF metadata
// ("{arch}.block_count", ...) or a Hugging Face config.json ("num_hidden_layers", ...).
//
// Both readers check that the required fields exist and have the right type (errors name
// the file and the key), then ValidateConfig() checks the values. Partial rotary
// embeddings (GGUF rope.dimension_count != head dim, HF partial_rotary_factor != 1) are
// UNIMPLEMENTED.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/rope.h"
#include "nlohmann/json.hpp"
#include "runtime/model/gguf.h"

namespace tessera {

struct ModelConfig {
  std::string arch;  // GGUF spelling: "llama", "qwen2", "mixtral", ...
  std::string name;  // general.name or the HF "_name_or_path", if any
  int64_t n_layers = 0;
  int64_t hidden = 0;      // H
  int64_t n_heads = 0;     // Hq
  int64_t n_kv_heads = 0;  // Hkv
  int64_t head_dim = 0;    // D
  int64_t ffn = 0;         // intermediate size of the dense MLP (or of one expert)
  int64_t vocab = 0;       // V
  int64_t context = 0;     // trained context length
  double rope_theta = 10000.0;
  // RoPE frequency scaling ("linear", "llama3", "yarn"), from HF rope_scaling / rope_parameters or
  // GGUF {arch}.rope.scaling.*; empty when none.
  std::string rope_scaling;
  double rope_factor = 1.0;
  double rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;
  int64_t rope_original_context = 0;
  // YaRN ("yarn"): the correction range's rotation counts, whether it is truncated, and the
  // factor on cos/sin (0: derived from factor, mscale and mscale_all_dim as transformers
  // does); DeepSeek also scales its attention scores by mscale(factor, mscale_all_dim)^2.
  double rope_beta_fast = 32, rope_beta_slow = 1;
  bool rope_truncate = true;
  double rope_attention_factor = 0, rope_mscale = 0, rope_mscale_all_dim = 0;
  double norm_eps = 1e-5;
  int64_t n_experts = 0;       // 0 for dense models
  int64_t n_experts_used = 0;  // top-k
  int64_t expert_ffn = 0;         // intermediate size of one routed expert
  int64_t shared_expert_ffn = 0;  // of the shared expert(s) (Qwen2-MoE; DeepSeek's summed); 0 if none
  std::optional<bool> norm_topk_prob;  // renormalise the chosen experts' weights
  std::optional<int64_t> sliding_window;
  // Which layers the sliding window applies to (1: local), one entry per layer, from HF
  // layer_types / sliding_window_pattern or GGUF {arch}.attention.sliding_window_pattern;
  // empty: every layer, when there is a window.
  std::vector<uint8_t> sliding_layers;
  // RoPE base of the local layers (HF rope_local_base_freq, GGUF {arch}.rope.freq_base_swa),
  // which take no RoPE scaling; 0: not given (rope_theta, scaled like the others).
  double rope_local_theta = 0;
  // Attention scores are scaled by query_scale^-1/2 (HF query_pre_attn_scalar); 0: by
  // head_dim^-1/2.
  double query_scale = 0;
  bool tied_embeddings = false;
  // Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2), when kv_lora_rank > 0: keys and
  // values come from one compressed latent of kv_lora_rank per token (what the KV cache
  // stores, with a RoPE key of head_dim shared by every head); head_dim is the RoPE part of
  // each head's query and key, qk_nope_dim the rest, v_head_dim each head's value.
  int64_t kv_lora_rank = 0;
  int64_t q_lora_rank = 0;  // the query's low-rank projection; 0: projected directly
  int64_t qk_nope_dim = 0;
  int64_t v_head_dim = 0;
  // MoE models whose first layers use the dense MLP (DeepSeek first_k_dense_replace).
  int64_t dense_layers = 0;
  // Expert routing: "softmax" (Mixtral, Qwen) or "sigmoid" (DeepSeek-V3: sigmoid scores,
  // grouped top-k, e_score_correction_bias), the expert groups, and a scale of the weights.
  std::string routing = "softmax";
  int64_t expert_groups = 1, expert_groups_used = 1;
  double routed_scale = 1.0;
  // The MLP activation a Hugging Face config names (hidden_activation, else hidden_act:
  // "silu", "gelu_pytorch_tanh", ...); empty in GGUF files, whose architecture implies it.
  std::string activation;
};

// YaRN's magnitude correction 0.1 * mscale * ln(factor) + 1 (1 for factor <= 1), and the
// cos/sin factor a config implies: attention_factor if given, else mscale(factor, mscale) /
// mscale(factor, mscale_all_dim) when both are set, else mscale(factor, 1) (transformers).
double YarnMscale(double factor, double mscale);
double YarnAttentionFactor(const ModelConfig& config);
// The RoPE scaling the kernels apply for the config's rope_scaling ("", "linear", "llama3",
// "yarn"); INVALID_ARGUMENT naming any other kind.
absl::StatusOr<kernels::RopeScaling> RopeScalingOf(const ModelConfig& config);

// Gemma's sliding_window_pattern `n`: every nth layer global (0), the others local (1);
// at most 2^20 entries (a longer model's pattern then does not match its layer count).
std::vector<uint8_t> SlidingPattern(int64_t layers, int64_t n);

// INVALID_ARGUMENT, naming `where` and the field, unless: every size (layers, hidden, heads,
// KV heads, head dim, FFN, vocabulary, context) is positive; the head dim is even; the KV
// heads divide the heads; the expert counts are consistent; the RMSNorm epsilon is in
// (0, 1); RoPE theta and scaling factors are finite, positive and fit f32; the sliding
// window is >= 0 and sliding_layers, if any, has one entry per layer; the local RoPE base
// and query scale are finite and >= 0; and the bytes of the weights (at f32), the full-context KV cache, and a
// full-context step's activations and logits fit int64.
absl::Status ValidateConfig(const ModelConfig& config, const std::string& where);

absl::StatusOr<ModelConfig> ConfigFromGguf(const gguf::GgufFile& file);
// `path` names config.json in errors.
absl::StatusOr<ModelConfig> ConfigFromHf(const nlohmann::json& config, const std::string& path);

}  // namespace tessera
