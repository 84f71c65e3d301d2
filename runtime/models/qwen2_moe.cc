// Qwen2-MoE (Qwen1.5-MoE): Qwen2 attention (QKV bias) with routed experts (softmax, top-k,
// renormalised only if norm_topk_prob) plus a shared expert scaled by a sigmoid gate.
#include "runtime/models/arch.h"

namespace tessera {

const ArchSpec& Qwen2MoeArch() {
  static const ArchSpec spec{
      .gguf_name = "qwen2moe",
      .hf_types = {"qwen2_moe"},
      .qkv_bias = true,
      .gguf_rope = kernels::RopeLayout::kRotateHalf,
      .norm_topk_default = false,
      .hf_router = "model.layers.{}.mlp.gate.weight",
      .hf_expert_gate = "model.layers.{}.mlp.experts.{e}.gate_proj.weight",
      .hf_expert_up = "model.layers.{}.mlp.experts.{e}.up_proj.weight",
      .hf_expert_down = "model.layers.{}.mlp.experts.{e}.down_proj.weight",
  };
  return spec;
}

}  // namespace tessera
