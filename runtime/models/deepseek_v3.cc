// DeepSeek-V3 and Kimi-K2 (GGUF deepseek2): multi-head latent attention (the KV cache holds
// one compressed latent and one RoPE key per token, shared by every head; adjacent-pair
// RoPE on the query's and key's RoPE dims), the first layers a dense SwiGLU MLP, the rest
// MoE with sigmoid-scored, grouped top-k routing biased by e_score_correction_bias, scaled
// by routed_scaling_factor, and shared experts added unconditionally. The attention's
// shapes and the routing come from the config (ModelConfig's latent-attention fields).
#include "runtime/models/arch.h"

namespace tessera {

const ArchSpec& DeepseekV3Arch() {
  static const ArchSpec spec{
      .gguf_name = "deepseek2",
      .hf_types = {"deepseek_v3", "kimi_k2"},
      .gguf_rope = kernels::RopeLayout::kAdjacentPairs,
      .hf_router = "model.layers.{}.mlp.gate.weight",
      .hf_expert_gate = "model.layers.{}.mlp.experts.{e}.gate_proj.weight",
      .hf_expert_up = "model.layers.{}.mlp.experts.{e}.up_proj.weight",
      .hf_expert_down = "model.layers.{}.mlp.experts.{e}.down_proj.weight",
      .hf_shared_prefix = "model.layers.{}.mlp.shared_experts",
      .hf_rope = kernels::RopeLayout::kAdjacentPairs,
  };
  return spec;
}

}  // namespace tessera
