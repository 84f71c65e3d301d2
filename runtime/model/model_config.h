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
  // RoPE frequency scaling ("linear", "llama3"), from HF rope_scaling / rope_parameters or
  // GGUF {arch}.rope.scaling.*; empty when none.
  std::string rope_scaling;
  double rope_factor = 1.0;
  double rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;
  int64_t rope_original_context = 0;
  double norm_eps = 1e-5;
  int64_t n_experts = 0;       // 0 for dense models
  int64_t n_experts_used = 0;  // top-k
  int64_t expert_ffn = 0;         // intermediate size of one routed expert
  int64_t shared_expert_ffn = 0;  // of the shared expert (Qwen2-MoE); 0 if none
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
  // The MLP activation a Hugging Face config names (hidden_activation, else hidden_act:
  // "silu", "gelu_pytorch_tanh", ...); empty in GGUF files, whose architecture implies it.
  std::string activation;
};

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
