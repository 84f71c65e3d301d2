// Mixtral: Llama attention with a sparse MoE MLP (softmax over all experts, top-k,
// renormalised). llama.cpp writes Mixtral GGUFs as general.architecture "llama" with an
// expert count, so the GGUF side is Llama's spec with experts; HF configs say "mixtral".
#include "runtime/models/arch.h"

namespace tessera {

const ArchSpec& MixtralArch() {
  static const ArchSpec spec{
      .gguf_name = "mixtral",
      .hf_types = {"mixtral"},
      .gguf_rope = kernels::RopeLayout::kAdjacentPairs,
      .norm_topk_default = true,
      .hf_router = "model.layers.{}.block_sparse_moe.gate.weight",
      .hf_expert_gate = "model.layers.{}.block_sparse_moe.experts.{e}.w1.weight",
      .hf_expert_up = "model.layers.{}.block_sparse_moe.experts.{e}.w3.weight",
      .hf_expert_down = "model.layers.{}.block_sparse_moe.experts.{e}.w2.weight",
  };
  return spec;
}

}  // namespace tessera
