// Qwen3-MoE: attention with per-head RMSNorm of q and k (qk-norm) before RoPE, no QKV
// bias, routed experts (softmax, top-k, renormalised).
#include "runtime/models/arch.h"

namespace tessera {

const ArchSpec& Qwen3MoeArch() {
  static const ArchSpec spec{
      .gguf_name = "qwen3moe",
      .hf_types = {"qwen3_moe"},
      .gguf_rope = kernels::RopeLayout::kRotateHalf,
      .qk_norm = true,
      .norm_topk_default = true,
      .hf_router = "model.layers.{}.mlp.gate.weight",
      .hf_expert_gate = "model.layers.{}.mlp.experts.{e}.gate_proj.weight",
      .hf_expert_up = "model.layers.{}.mlp.experts.{e}.up_proj.weight",
      .hf_expert_down = "model.layers.{}.mlp.experts.{e}.down_proj.weight",
  };
  return spec;
}

}  // namespace tessera
