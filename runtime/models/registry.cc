#include <array>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "runtime/models/arch.h"

namespace tessera {

std::string LayerName(const std::string& pattern, int64_t layer) {
  return absl::StrReplaceAll(pattern, {{"{}", absl::StrCat(layer)}});
}

TensorNames GgufTensorNames() {
  return {
      .embedding = "token_embd.weight",
      .final_norm = "output_norm.weight",
      .lm_head = "output.weight",
      .attn_norm = "blk.{}.attn_norm.weight",
      .q = "blk.{}.attn_q.weight",
      .k = "blk.{}.attn_k.weight",
      .v = "blk.{}.attn_v.weight",
      .o = "blk.{}.attn_output.weight",
      .q_bias = "blk.{}.attn_q.bias",
      .k_bias = "blk.{}.attn_k.bias",
      .v_bias = "blk.{}.attn_v.bias",
      .ffn_norm = "blk.{}.ffn_norm.weight",
      .gate = "blk.{}.ffn_gate.weight",
      .up = "blk.{}.ffn_up.weight",
      .down = "blk.{}.ffn_down.weight",
      .q_norm = "blk.{}.attn_q_norm.weight",
      .k_norm = "blk.{}.attn_k_norm.weight",
      .attn_post_norm = "blk.{}.post_attention_norm.weight",
      .ffn_post_norm = "blk.{}.post_ffw_norm.weight",
      .router = "blk.{}.ffn_gate_inp.weight",
      .expert_gate = "blk.{}.ffn_gate_exps.weight",
      .expert_up = "blk.{}.ffn_up_exps.weight",
      .expert_down = "blk.{}.ffn_down_exps.weight",
      .shared_gate = "blk.{}.ffn_gate_shexp.weight",
      .shared_up = "blk.{}.ffn_up_shexp.weight",
      .shared_down = "blk.{}.ffn_down_shexp.weight",
      .shared_router = "blk.{}.ffn_gate_inp_shexp.weight",
      .router_bias = "blk.{}.exp_probs_b.bias",
      .q_a = "blk.{}.attn_q_a.weight",
      .q_a_norm = "blk.{}.attn_q_a_norm.weight",
      .q_b = "blk.{}.attn_q_b.weight",
      .kv_a = "blk.{}.attn_kv_a_mqa.weight",
      .kv_a_norm = "blk.{}.attn_kv_a_norm.weight",
      .kv_b = "blk.{}.attn_kv_b.weight",
      .k_b = "blk.{}.attn_k_b.weight",
      .v_b = "blk.{}.attn_v_b.weight",
  };
}

TensorNames HfTensorNames(const ArchSpec& arch) {
  const std::string shared =
      arch.hf_shared_prefix.empty() ? "model.layers.{}.mlp.shared_expert" : arch.hf_shared_prefix;
  return {
      .embedding = "model.embed_tokens.weight",
      .final_norm = "model.norm.weight",
      .lm_head = "lm_head.weight",
      .attn_norm = "model.layers.{}.input_layernorm.weight",
      .q = "model.layers.{}.self_attn.q_proj.weight",
      .k = "model.layers.{}.self_attn.k_proj.weight",
      .v = "model.layers.{}.self_attn.v_proj.weight",
      .o = "model.layers.{}.self_attn.o_proj.weight",
      .q_bias = "model.layers.{}.self_attn.q_proj.bias",
      .k_bias = "model.layers.{}.self_attn.k_proj.bias",
      .v_bias = "model.layers.{}.self_attn.v_proj.bias",
      .ffn_norm = arch.post_norms ? "model.layers.{}.pre_feedforward_layernorm.weight"
                                  : "model.layers.{}.post_attention_layernorm.weight",
      .gate = "model.layers.{}.mlp.gate_proj.weight",
      .up = "model.layers.{}.mlp.up_proj.weight",
      .down = "model.layers.{}.mlp.down_proj.weight",
      .q_norm = "model.layers.{}.self_attn.q_norm.weight",
      .k_norm = "model.layers.{}.self_attn.k_norm.weight",
      .attn_post_norm = arch.post_norms ? "model.layers.{}.post_attention_layernorm.weight" : "",
      .ffn_post_norm = arch.post_norms ? "model.layers.{}.post_feedforward_layernorm.weight" : "",
      .router = arch.hf_router,
      .expert_gate = arch.hf_expert_gate,
      .expert_up = arch.hf_expert_up,
      .expert_down = arch.hf_expert_down,
      .shared_gate = shared + ".gate_proj.weight",
      .shared_up = shared + ".up_proj.weight",
      .shared_down = shared + ".down_proj.weight",
      .shared_router = "model.layers.{}.mlp.shared_expert_gate.weight",
      .router_bias = "model.layers.{}.mlp.gate.e_score_correction_bias",
      .q_a = "model.layers.{}.self_attn.q_a_proj.weight",
      .q_a_norm = "model.layers.{}.self_attn.q_a_layernorm.weight",
      .q_b = "model.layers.{}.self_attn.q_b_proj.weight",
      .kv_a = "model.layers.{}.self_attn.kv_a_proj_with_mqa.weight",
      .kv_a_norm = "model.layers.{}.self_attn.kv_a_layernorm.weight",
      .kv_b = "model.layers.{}.self_attn.kv_b_proj.weight",
      .k_b = "",  // Hugging Face files hold kv_b only
      .v_b = "",
  };
}

absl::StatusOr<const ArchSpec*> FindArch(const std::string& name) {
  // The registry: one line per architecture.
  static const std::array<const ArchSpec*, 9> kArchs = {
      &LlamaArch(),   &MistralArch(),  &Qwen2Arch(),    &Qwen3Arch(),     &Gemma3Arch(),
      &MixtralArch(), &Qwen2MoeArch(), &Qwen3MoeArch(), &DeepseekV3Arch(),
  };
  std::vector<std::string> known;
  for (const ArchSpec* a : kArchs) {
    if (a->gguf_name == name) return a;
    for (const std::string& t : a->hf_types) {
      if (t == name) return a;
    }
    known.push_back(a->gguf_name);
  }
  return absl::NotFoundError(absl::StrCat("architecture '", name,
                                          "' is not supported (supported: ",
                                          absl::StrJoin(known, ", "), ")"));
}

}  // namespace tessera
