#include "runtime/model/model_config.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/buffer.h"

namespace tessera {
namespace {

using json = nlohmann::json;

absl::StatusOr<std::vector<uint8_t>> BoolArray(const gguf::GgufFile& f, const gguf::Value& v,
                                               const std::string& key) {
  std::vector<uint8_t> out;
  for (const gguf::Value& item : v.items()) {
    std::optional<bool> b = item.AsBool();
    if (!b) break;
    out.push_back(*b);
  }
  if (!v.is_array() || out.size() != v.items().size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        f.name(), ": metadata key ", key, ": expected an integer or an array of bools, found ",
        gguf::ValueTypeName(v.type())));
  }
  return out;
}

}  // namespace

double YarnMscale(double factor, double mscale) {
  return factor <= 1 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0;
}

double YarnAttentionFactor(const ModelConfig& c) {
  if (c.rope_attention_factor > 0) return c.rope_attention_factor;
  if (c.rope_mscale > 0 && c.rope_mscale_all_dim > 0) {
    return YarnMscale(c.rope_factor, c.rope_mscale) / YarnMscale(c.rope_factor, c.rope_mscale_all_dim);
  }
  return YarnMscale(c.rope_factor, 1.0);
}

absl::StatusOr<kernels::RopeScaling> RopeScalingOf(const ModelConfig& c) {
  using kernels::RopeScaling;
  if (c.rope_scaling.empty()) return RopeScaling{};
  if (c.rope_scaling == "linear") {
    return RopeScaling{.kind = RopeScaling::kLinear, .factor = static_cast<float>(c.rope_factor)};
  }
  if (c.rope_scaling == "llama3") {
    return RopeScaling{.kind = RopeScaling::kLlama3,
                       .factor = static_cast<float>(c.rope_factor),
                       .low_freq_factor = static_cast<float>(c.rope_low_freq_factor),
                       .high_freq_factor = static_cast<float>(c.rope_high_freq_factor),
                       .original_context = c.rope_original_context};
  }
  if (c.rope_scaling == "yarn") {
    return RopeScaling{.kind = RopeScaling::kYarn,
                       .factor = static_cast<float>(c.rope_factor),
                       .original_context = c.rope_original_context,
                       .beta_fast = static_cast<float>(c.rope_beta_fast),
                       .beta_slow = static_cast<float>(c.rope_beta_slow),
                       .truncate = c.rope_truncate,
                       .attention_factor = static_cast<float>(YarnAttentionFactor(c))};
  }
  return absl::InvalidArgumentError(absl::StrCat("RoPE scaling '", c.rope_scaling,
                                                 "' is not supported (supported: linear, llama3, yarn)"));
}

std::vector<uint8_t> SlidingPattern(int64_t layers, int64_t n) {
  std::vector<uint8_t> local;
  for (int64_t l = 0; l < layers && l < (int64_t{1} << 20); ++l) local.push_back((l + 1) % n != 0);
  return local;
}

absl::Status ValidateConfig(const ModelConfig& c, const std::string& where) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
  };
  for (auto [name, v] : {std::pair<const char*, int64_t>{"layer count", c.n_layers},
                         {"hidden size", c.hidden},
                         {"attention head count", c.n_heads},
                         {"KV head count", c.n_kv_heads},
                         {"head dim", c.head_dim},
                         {"FFN size", c.ffn},
                         {"vocabulary size", c.vocab},
                         {"context length", c.context}}) {
    if (v <= 0) return bad(absl::StrCat(name, " ", v, " must be positive"));
  }
  if (c.head_dim % 2 != 0) {
    return bad(absl::StrCat("head dim ", c.head_dim, " must be even (RoPE rotates pairs)"));
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return bad(absl::StrCat(c.n_heads, " attention heads are not a multiple of ", c.n_kv_heads,
                            " KV heads"));
  }
  if (c.n_experts < 0 || c.n_experts_used < 0 || c.n_experts_used > c.n_experts ||
      (c.n_experts > 0 && (c.n_experts_used == 0 || c.expert_ffn <= 0)) ||
      c.shared_expert_ffn < 0) {
    return bad(absl::StrCat("expert count ", c.n_experts, " / experts per token ",
                            c.n_experts_used, " / expert FFN size ", c.expert_ffn,
                            " / shared expert FFN size ", c.shared_expert_ffn,
                            " are inconsistent"));
  }
  if (c.kv_lora_rank < 0 || c.q_lora_rank < 0 ||
      (c.kv_lora_rank > 0 && (c.qk_nope_dim <= 0 || c.v_head_dim <= 0 || c.n_kv_heads != c.n_heads))) {
    return bad(absl::StrCat("latent attention: KV rank ", c.kv_lora_rank, ", query rank ",
                            c.q_lora_rank, ", no-RoPE head dim ", c.qk_nope_dim, ", value head dim ",
                            c.v_head_dim, ", ", c.n_kv_heads, " KV heads for ", c.n_heads,
                            " heads are inconsistent"));
  }
  if (c.dense_layers < 0 || c.dense_layers > c.n_layers || (c.dense_layers > 0 && c.n_experts == 0)) {
    return bad(absl::StrCat(c.dense_layers, " leading dense layers of ", c.n_layers,
                            (c.n_experts == 0 ? " in a model without experts" : "")));
  }
  if (c.routing != "softmax" && c.routing != "sigmoid") {
    return bad(absl::StrCat("expert routing '", c.routing, "' is not one of softmax, sigmoid"));
  }
  if (c.n_experts > std::numeric_limits<int32_t>::max()) {
    return bad(absl::StrCat(c.n_experts, " experts are more than 2^31 - 1"));
  }
  if (c.expert_groups < 1 || c.expert_groups_used < 1 || c.expert_groups_used > c.expert_groups ||
      c.expert_groups > std::max<int64_t>(1, c.n_experts) ||
      (c.n_experts > 0 && c.n_experts % c.expert_groups != 0)) {
    return bad(absl::StrCat(c.expert_groups, " expert groups (", c.expert_groups_used,
                            " used) for ", c.n_experts, " experts are inconsistent"));
  }
  if (!(std::isfinite(c.norm_eps) && c.norm_eps > 0 && c.norm_eps < 1)) {
    return bad(absl::StrCat("RMSNorm epsilon ", c.norm_eps, " must be finite and in (0, 1)"));
  }
  // The kernels take theta and the scaling factors as f32.
  auto positive_f32 = [](double x) {
    return std::isfinite(x) && x > 0 && x <= std::numeric_limits<float>::max();
  };
  if (!positive_f32(c.rope_theta)) {
    return bad(absl::StrCat("RoPE theta ", c.rope_theta, " must be finite and positive"));
  }
  if (!positive_f32(c.routed_scale)) {
    return bad(absl::StrCat("expert weight scale ", c.routed_scale, " must be finite and positive"));
  }
  if (!c.rope_scaling.empty() && !positive_f32(c.rope_factor)) {
    return bad(absl::StrCat("RoPE scaling factor ", c.rope_factor, " must be finite and positive"));
  }
  if (c.rope_scaling == "llama3" &&
      !(positive_f32(c.rope_low_freq_factor) && positive_f32(c.rope_high_freq_factor) &&
        c.rope_high_freq_factor > c.rope_low_freq_factor && c.rope_original_context > 0)) {
    return bad(absl::StrCat("llama3 RoPE scaling needs 0 < low_freq_factor < high_freq_factor "
                            "and original_max_position_embeddings > 0; found ",
                            c.rope_low_freq_factor, ", ", c.rope_high_freq_factor, ", ",
                            c.rope_original_context));
  }
  if (c.rope_scaling == "yarn") {
    if (!(positive_f32(c.rope_beta_fast) && positive_f32(c.rope_beta_slow) &&
          c.rope_original_context > 0 && c.rope_original_context <= (int64_t{1} << 40))) {
      return bad(absl::StrCat("yarn RoPE scaling needs positive beta_fast, beta_slow and "
                              "original_max_position_embeddings; found ", c.rope_beta_fast, ", ",
                              c.rope_beta_slow, ", ", c.rope_original_context));
    }
    if (!(c.rope_theta > 1)) {
      return bad(absl::StrCat("yarn RoPE scaling needs RoPE theta > 1, found ", c.rope_theta));
    }
  }
  for (auto [what, v] : {std::pair<const char*, double>{"yarn attention_factor", c.rope_attention_factor},
                         {"yarn mscale", c.rope_mscale},
                         {"yarn mscale_all_dim", c.rope_mscale_all_dim}}) {
    if (!(v == 0 || positive_f32(v))) return bad(absl::StrCat(what, " ", v, " must be finite and >= 0"));
  }
  if (!c.rope_scaling.empty()) {  // the cos/sin factor and DeepSeek's score scale, in f32
    const double m = YarnMscale(c.rope_factor, c.rope_mscale_all_dim);
    if (!positive_f32(YarnAttentionFactor(c)) || !positive_f32(m * m)) {
      return bad(absl::StrCat("RoPE scaling factor ", c.rope_factor, " with mscale ", c.rope_mscale,
                              " / mscale_all_dim ", c.rope_mscale_all_dim, " is out of f32 range"));
    }
  }
  if (c.sliding_window && *c.sliding_window < 0) {
    return bad(absl::StrCat("sliding window ", *c.sliding_window, " must be >= 0"));
  }
  if (!c.sliding_layers.empty() && static_cast<int64_t>(c.sliding_layers.size()) != c.n_layers) {
    return bad(absl::StrCat("the sliding-window layer pattern has ", c.sliding_layers.size(),
                            " entries for ", c.n_layers, " layers"));
  }
  for (auto [what, v] : {std::pair<const char*, double>{"local RoPE base", c.rope_local_theta},
                         {"query scale", c.query_scale}}) {
    if (!(v == 0 || positive_f32(v))) {
      return bad(absl::StrCat(what, " ", v, " must be finite and positive"));
    }
  }
  // Every size that sizes an allocation, at f32 (--exact weights, the KV cache, a full-context
  // step's activations and logits), must fit int64; whether it fits in memory is checked
  // when it is allocated.
  using kernels::CheckedProduct;
  const int64_t L = c.n_layers, H = c.hidden, T = c.context, V = c.vocab, F = c.ffn,
                E = c.n_experts, Fe = c.expert_ffn, Fs = c.shared_expert_ffn;
  using kernels::CheckedSum;
  // Per layer: the attention's weight elements, the widest attention activation row and a
  // token's K/V elements (latent attention: each head's query, key and value dims over its
  // widest input; rows of every head's absorbed query; the latent and the RoPE key).
  const bool latent = c.kv_lora_rank > 0;
  const std::optional<int64_t> q = CheckedProduct({c.n_heads, c.head_dim}),
                               kv = latent ? CheckedSum({c.kv_lora_rank, c.head_dim})
                                           : CheckedProduct({c.n_kv_heads, c.head_dim});
  const std::optional<int64_t> attn =
      latent ? CheckedProduct({c.n_heads,
                               CheckedSum({c.head_dim, c.qk_nope_dim, c.qk_nope_dim, c.v_head_dim,
                                           c.v_head_dim}).value_or(-1),
                               CheckedSum({H, c.q_lora_rank, c.kv_lora_rank}).value_or(-1)})
             : (q && kv ? CheckedSum({CheckedProduct({2, *q, H}), CheckedProduct({2, *kv, H})})
                        : std::nullopt);
  const std::optional<int64_t> attn_row =
      latent && kv ? CheckedProduct({c.n_heads, *kv}) : q;
  std::optional<int64_t> layer;  // weight elements of one layer
  if (attn && kv && attn_row) {
    layer = CheckedSum({attn, CheckedProduct({3, F, H}), CheckedProduct({3, E, Fe, H}),
                        CheckedProduct({E, H}), CheckedProduct({3, Fs, H})});
  }
  const std::optional<int64_t> weights =
      layer ? CheckedSum({CheckedProduct({L, *layer, 4}), CheckedProduct({2, V, H, 4})}) : std::nullopt;
  const int64_t widest = std::max({H, attn_row.value_or(0), F, Fe, Fs});
  for (auto [name, bytes] :
       {std::pair<const char*, std::optional<int64_t>>{"the weights at f32", weights},
        {"the KV cache for the full context", kv ? CheckedProduct({L, T, *kv, 2, 4}) : std::nullopt},
        {"the activations of a full-context step", CheckedProduct({T, widest, 4})},
        {"the logits of a full-context step", CheckedProduct({T, V, 4})}}) {
    if (!bytes) {
      return bad(absl::StrCat("the byte size of ", name, " overflows int64 (layers ", L,
                              ", hidden ", H, ", heads ", c.n_heads, "/", c.n_kv_heads,
                              ", head dim ", c.head_dim, ", FFN ", F, ", experts ", E,
                              ", vocabulary ", V, ", context ", T, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ConfigFromGguf(const gguf::GgufFile& f) {
  ModelConfig c;
  auto arch = f.GetString("general.architecture");
  if (!arch.ok()) return arch.status();
  c.arch = std::string(*arch);
  if (auto name = f.GetString("general.name"); name.ok()) c.name = std::string(*name);
  const std::string p = c.arch + ".";
  auto need = [&](const std::string& key, int64_t& out) -> absl::Status {
    auto v = f.GetInt(p + key);
    if (!v.ok()) return v.status();
    out = *v;
    return absl::OkStatus();
  };
  for (auto [key, out] : {std::pair<const char*, int64_t*>{"block_count", &c.n_layers},
                          {"embedding_length", &c.hidden},
                          {"attention.head_count", &c.n_heads},
                          {"feed_forward_length", &c.ffn},
                          {"context_length", &c.context}}) {
    if (absl::Status s = need(key, *out); !s.ok()) return s;
  }
  c.n_kv_heads = f.GetInt(p + "attention.head_count_kv").value_or(c.n_heads);
  if (c.n_heads > 0 && c.hidden % c.n_heads == 0) c.head_dim = c.hidden / c.n_heads;
  c.head_dim = f.GetInt(p + "attention.key_length").value_or(c.head_dim);
  c.rope_theta = f.GetFloat(p + "rope.freq_base").value_or(10000.0);
  if (auto type = f.GetString(p + "rope.scaling.type"); type.ok() && *type != "none") {
    c.rope_scaling = std::string(*type);
    c.rope_factor = f.GetFloat(p + "rope.scaling.factor").value_or(1.0);
    c.rope_original_context = f.GetInt(p + "rope.scaling.original_context_length").value_or(0);
    if (c.rope_scaling == "yarn" && c.rope_original_context == 0) c.rope_original_context = c.context;
    c.rope_beta_fast = f.GetFloat(p + "rope.scaling.yarn_beta_fast").value_or(32.0);
    c.rope_beta_slow = f.GetFloat(p + "rope.scaling.yarn_beta_slow").value_or(1.0);
  }
  c.norm_eps = f.GetFloat(p + "attention.layer_norm_rms_epsilon").value_or(1e-5);
  c.n_experts = f.GetInt(p + "expert_count").value_or(0);
  c.n_experts_used = f.GetInt(p + "expert_used_count").value_or(0);
  c.expert_ffn = f.GetInt(p + "expert_feed_forward_length").value_or(c.ffn);
  c.shared_expert_ffn = f.GetInt(p + "expert_shared_feed_forward_length").value_or(0);
  if (auto norm = f.GetBool(p + "expert_weights_norm"); norm.ok()) c.norm_topk_prob = *norm;
  c.dense_layers = f.GetInt(p + "leading_dense_block_count").value_or(0);
  if (auto shared = f.GetInt(p + "expert_shared_count"); shared.ok() && *shared > 0) {
    // DeepSeek: the shared experts run as one MLP of their summed size.
    const std::optional<int64_t> fs = kernels::CheckedProduct({*shared, c.expert_ffn});
    if (!fs) {
      return absl::InvalidArgumentError(absl::StrCat(f.name(), ": metadata key ", p,
                                                     "expert_shared_count: ", *shared,
                                                     " shared experts overflow int64"));
    }
    c.shared_expert_ffn = *fs;
  }
  c.routed_scale = f.GetFloat(p + "expert_weights_scale").value_or(1.0);
  if (auto gating = f.GetInt(p + "expert_gating_func"); gating.ok()) {
    // llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE: 0 none (softmax, as llama.cpp reads it),
    // 1 softmax, 2 sigmoid.
    if (*gating < 0 || *gating > 2) {
      return absl::UnimplementedError(absl::StrCat(f.name(), ": metadata key ", p,
                                                   "expert_gating_func: ", *gating,
                                                   " (known: 0 none, 1 softmax, 2 sigmoid)"));
    }
    c.routing = *gating == 2 ? "sigmoid" : "softmax";
  }
  c.expert_groups = f.GetInt(p + "expert_group_count").value_or(1);
  c.expert_groups_used = f.GetInt(p + "expert_group_used_count").value_or(c.expert_groups);
  // Latent attention (llama.cpp's deepseek2): head_count_kv, key_length and value_length
  // then describe the cache row (1 head of kv_lora_rank + RoPE dims); the per-head query
  // and value dims are key_length_mla and value_length_mla (older files: key_length and
  // value_length, with head_count_kv = head_count).
  c.kv_lora_rank = f.GetInt(p + "attention.kv_lora_rank").value_or(0);
  if (c.kv_lora_rank > 0) {
    c.q_lora_rank = f.GetInt(p + "attention.q_lora_rank").value_or(0);
    auto rope = f.GetInt(p + "rope.dimension_count");
    if (!rope.ok()) return rope.status();
    const bool split = f.Find(p + "attention.key_length_mla") != nullptr;
    const std::string key_name = split ? "attention.key_length_mla" : "attention.key_length";
    auto key = f.GetInt(p + key_name);
    auto value = f.GetInt(p + (split ? "attention.value_length_mla" : "attention.value_length"));
    if (!key.ok()) return key.status();
    if (!value.ok()) return value.status();
    if (*rope <= 0 || *key <= *rope) {
      return absl::InvalidArgumentError(absl::StrCat(
          f.name(), ": metadata key ", p, key_name, ": ", *key, " must exceed the ", *rope,
          " RoPE dims (", p, "rope.dimension_count) of latent attention"));
    }
    c.head_dim = *rope;
    c.qk_nope_dim = *key - *rope;
    c.v_head_dim = *value;
    c.n_kv_heads = c.n_heads;
    // llama.cpp's converter writes DeepSeek's 0.1 * mscale_all_dim as the log multiplier
    // (and runs its RoPE with no net cos/sin factor: mscale = mscale_all_dim).
    if (auto log_mul = f.GetFloat(p + "rope.scaling.yarn_log_multiplier"); log_mul.ok()) {
      c.rope_mscale = c.rope_mscale_all_dim = *log_mul / 0.1;
    }
  }
  if (auto sw = f.GetInt(p + "attention.sliding_window"); sw.ok()) c.sliding_window = *sw;
  if (const gguf::Value* pattern = f.Find(p + "attention.sliding_window_pattern")) {
    // An integer N (every Nth layer global) or one bool per layer (true: local).
    if (auto n = f.GetInt(p + "attention.sliding_window_pattern"); n.ok()) {
      if (*n <= 0 || *n > (int64_t{1} << 20)) {
        return absl::InvalidArgumentError(absl::StrCat(
            f.name(), ": metadata key ", p, "attention.sliding_window_pattern: ", *n,
            " must be in [1, 2^20]"));
      }
      c.sliding_layers = SlidingPattern(c.n_layers, *n);
    } else {
      absl::StatusOr<std::vector<uint8_t>> layers = BoolArray(f, *pattern, p + "attention.sliding_window_pattern");
      if (!layers.ok()) return layers.status();
      c.sliding_layers = *std::move(layers);
    }
  }
  c.rope_local_theta = f.GetFloat(p + "rope.freq_base_swa").value_or(0.0);
  for (const char* key : {"final_logit_softcapping", "attn_logit_softcapping"}) {
    if (f.Find(p + key) != nullptr) {
      return absl::UnimplementedError(absl::StrCat(f.name(), ": metadata key ", p, key,
                                                   ": logit soft-capping is not supported"));
    }
  }
  if (auto v = f.GetInt(p + "vocab_size"); v.ok()) {
    c.vocab = *v;
  } else if (const gguf::Value* tokens = f.Find("tokenizer.ggml.tokens")) {
    c.vocab = static_cast<int64_t>(tokens->items().size());
  }
  c.tied_embeddings = f.FindTensor("output.weight") == nullptr;
  if (auto rope_dims = f.GetInt(p + "rope.dimension_count");
      c.kv_lora_rank == 0 && rope_dims.ok() && *rope_dims != c.head_dim) {
    return absl::UnimplementedError(absl::StrCat(
        f.name(), ": metadata key ", p, "rope.dimension_count: ", *rope_dims,
        " rotary dims differ from the head dim ", c.head_dim,
        "; partial rotary embeddings are not supported"));
  }
  if (absl::Status s = ValidateConfig(c, f.name()); !s.ok()) return s;
  return c;
}

absl::StatusOr<ModelConfig> ConfigFromHf(const json& j, const std::string& path) {
  ModelConfig c;
  auto bad = [&](const std::string& key, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", key, ": ", what));
  };
  auto get_int = [&](const char* key, int64_t& out, bool required) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      return required ? bad(key, "missing") : absl::OkStatus();
    }
    if (!it->is_number_integer()) return bad(key, "expected an integer");
    out = it->get<int64_t>();
    return absl::OkStatus();
  };
  auto get_float = [&](const char* key, double& out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_number()) return bad(key, "expected a number");
    out = it->get<double>();
    return absl::OkStatus();
  };
  auto mt = j.find("model_type");
  if (mt == j.end() || !mt->is_string()) return bad("model_type", "missing or not a string");
  c.arch = mt->get<std::string>();
  if (auto n = j.find("_name_or_path"); n != j.end() && n->is_string()) c.name = n->get<std::string>();
  for (auto [key, out, required] : {std::tuple<const char*, int64_t*, bool>{
                                        "num_hidden_layers", &c.n_layers, true},
                                    {"hidden_size", &c.hidden, true},
                                    {"num_attention_heads", &c.n_heads, true},
                                    {"intermediate_size", &c.ffn, true},
                                    {"vocab_size", &c.vocab, true},
                                    {"max_position_embeddings", &c.context, true},
                                    {"num_local_experts", &c.n_experts, false},
                                    {"num_experts", &c.n_experts, false},
                                    {"num_experts_per_tok", &c.n_experts_used, false}}) {
    if (absl::Status s = get_int(key, *out, required); !s.ok()) return s;
  }
  c.n_kv_heads = c.n_heads;
  if (absl::Status s = get_int("num_key_value_heads", c.n_kv_heads, false); !s.ok()) return s;
  if (c.n_heads > 0 && c.hidden % c.n_heads == 0) c.head_dim = c.hidden / c.n_heads;
  if (absl::Status s = get_int("head_dim", c.head_dim, false); !s.ok()) return s;
  c.expert_ffn = c.ffn;  // Mixtral's experts use intermediate_size
  for (auto [key, out] : {std::pair<const char*, int64_t*>{"moe_intermediate_size", &c.expert_ffn},
                          {"shared_expert_intermediate_size", &c.shared_expert_ffn}}) {
    if (absl::Status s = get_int(key, *out, false); !s.ok()) return s;
  }
  if (auto norm = j.find("norm_topk_prob"); norm != j.end() && norm->is_boolean()) {
    c.norm_topk_prob = norm->get<bool>();
  }
  // DeepSeek-V3 / Kimi-K2: latent attention, sigmoid grouped routing, shared experts, and
  // the first layers dense. Their latent-attention sizes and expert count are required; the
  // other MoE keys default as transformers' DeepseekV3Config does.
  const bool deepseek = c.arch == "deepseek_v3" || c.arch == "kimi_k2";
  if (absl::Status s = get_int("kv_lora_rank", c.kv_lora_rank, deepseek); !s.ok()) return s;
  if (c.kv_lora_rank > 0) {
    int64_t rope = 0;
    for (auto [key, out, required] :
         {std::tuple<const char*, int64_t*, bool>{"q_lora_rank", &c.q_lora_rank, false},
          {"qk_nope_head_dim", &c.qk_nope_dim, true},
          {"qk_rope_head_dim", &rope, true},
          {"v_head_dim", &c.v_head_dim, true}}) {
      if (absl::Status s = get_int(key, *out, required); !s.ok()) return s;
    }
    c.head_dim = rope;
    c.n_kv_heads = c.n_heads;
    if (auto bias = j.find("attention_bias"); bias != j.end() && *bias == true) {
      return absl::UnimplementedError(
          absl::StrCat(path, ": attention_bias: true; latent attention without biases only"));
    }
    if (auto il = j.find("rope_interleave"); il != j.end() && *il == false) {
      return absl::UnimplementedError(absl::StrCat(
          path, ": rope_interleave: false; latent attention rotates adjacent pairs only"));
    }
  }
  if (auto n = j.find("n_routed_experts"); deepseek || (n != j.end() && !n->is_null())) {
    int64_t shared = 1, freq = 1;
    c.dense_layers = 3, c.expert_groups = 8, c.expert_groups_used = 4, c.routed_scale = 2.5;
    if (absl::Status s = get_int("n_routed_experts", c.n_experts, true); !s.ok()) return s;
    for (auto [key, out] : {std::pair<const char*, int64_t*>{"n_shared_experts", &shared},
                            {"first_k_dense_replace", &c.dense_layers},
                            {"moe_layer_freq", &freq},
                            {"n_group", &c.expert_groups},
                            {"topk_group", &c.expert_groups_used}}) {
      if (absl::Status s = get_int(key, *out, false); !s.ok()) return s;
    }
    if (freq != 1) {
      return absl::UnimplementedError(absl::StrCat(
          path, ": moe_layer_freq: ", freq, "; only every layer after the dense ones is MoE"));
    }
    if (shared < 0) return bad("n_shared_experts", "must be >= 0");
    if (shared > 0) {
      const std::optional<int64_t> fs = kernels::CheckedProduct({shared, c.expert_ffn});
      if (!fs) return bad("n_shared_experts", "overflows int64");
      c.shared_expert_ffn = *fs;
    }
    if (absl::Status s = get_float("routed_scaling_factor", c.routed_scale); !s.ok()) return s;
    // DeepSeek-V3's router: sigmoid scores, selection biased by e_score_correction_bias.
    c.routing = "sigmoid";
    auto scoring = j.find("scoring_func");
    auto method = j.find("topk_method");
    if ((scoring != j.end() && *scoring != "sigmoid") ||
        (method != j.end() && *method != "noaux_tc")) {
      return absl::UnimplementedError(absl::StrCat(
          path, ": scoring_func ", scoring != j.end() ? scoring->dump() : "(none)",
          ", topk_method ", method != j.end() ? method->dump() : "(none)",
          "; DeepSeek routing is supported as V3 has it (sigmoid, noaux_tc)"));
    }
  }
  if (absl::Status s = get_float("rope_theta", c.rope_theta); !s.ok()) return s;
  // transformers >= 5 writes rope_parameters; older versions rope_theta and rope_scaling.
  // Models with local and global layers (Gemma 3) have one set per layer type there.
  auto read_rope = [&](const json& rp, const std::string& key) -> absl::Status {
    auto num = [&](const char* name, double& out) -> absl::Status {
      auto it = rp.find(name);
      if (it == rp.end() || it->is_null()) return absl::OkStatus();
      if (!it->is_number()) return bad(absl::StrCat(key, ".", name), "expected a number");
      out = it->get<double>();
      return absl::OkStatus();
    };
    double original = 0;
    for (absl::Status s : {num("rope_theta", c.rope_theta), num("factor", c.rope_factor),
                           num("low_freq_factor", c.rope_low_freq_factor),
                           num("high_freq_factor", c.rope_high_freq_factor),
                           num("original_max_position_embeddings", original),
                           num("beta_fast", c.rope_beta_fast), num("beta_slow", c.rope_beta_slow),
                           num("attention_factor", c.rope_attention_factor),
                           num("mscale", c.rope_mscale), num("mscale_all_dim", c.rope_mscale_all_dim)}) {
      if (!s.ok()) return s;
    }
    if (auto t = rp.find("truncate"); t != rp.end() && t->is_boolean()) c.rope_truncate = t->get<bool>();
    // A double outside int64's range does not convert (undefined behaviour); 2^53 is far
    // above any context length and exact in a double.
    if (!(original >= 0 && original <= 9007199254740992.0)) {
      return bad(absl::StrCat(key, ".original_max_position_embeddings"),
                 absl::StrCat("must be in [0, 2^53], found ", original));
    }
    c.rope_original_context = static_cast<int64_t>(original);
    auto type = rp.find("rope_type");
    if (type == rp.end()) type = rp.find("type");
    if (type != rp.end() && type->is_string() && *type != "default") {
      c.rope_scaling = type->get<std::string>();
    }
    return absl::OkStatus();
  };
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    auto rp = j.find(key);
    if (rp == j.end() || rp->is_null()) continue;
    if (!rp->is_object()) return bad(key, "expected an object");
    auto full = rp->find("full_attention");
    if (full == rp->end()) {
      if (absl::Status s = read_rope(*rp, key); !s.ok()) return s;
      continue;
    }
    if (!full->is_object()) return bad(absl::StrCat(key, ".full_attention"), "expected an object");
    if (absl::Status s = read_rope(*full, absl::StrCat(key, ".full_attention")); !s.ok()) return s;
    if (auto local = rp->find("sliding_attention"); local != rp->end()) {
      const std::string where = absl::StrCat(key, ".sliding_attention");
      if (!local->is_object()) return bad(where, "expected an object");
      auto theta = local->find("rope_theta");
      if (theta != local->end()) {
        if (!theta->is_number()) return bad(absl::StrCat(where, ".rope_theta"), "expected a number");
        c.rope_local_theta = theta->get<double>();
      }
      auto type = local->find("rope_type");
      if (type != local->end() && *type != "default") {
        return absl::UnimplementedError(absl::StrCat(path, ": ", where, ".rope_type: ",
                                                     type->dump(),
                                                     "; RoPE scaling of local layers is not supported"));
      }
    }
  }
  // transformers' default for YaRN's pre-training context: the model's.
  if (c.rope_scaling == "yarn" && c.rope_original_context == 0) c.rope_original_context = c.context;
  if (absl::Status s = get_float("rms_norm_eps", c.norm_eps); !s.ok()) return s;
  if (auto sw = j.find("sliding_window"); sw != j.end() && sw->is_number_integer()) {
    const bool enabled = !j.contains("use_sliding_window") || j["use_sliding_window"] == true;
    if (enabled) c.sliding_window = sw->get<int64_t>();
  }
  if (auto lt = j.find("layer_types"); lt != j.end() && !lt->is_null()) {
    if (!lt->is_array()) return bad("layer_types", "expected an array");
    for (const json& t : *lt) {
      if (!t.is_string() || (t != "sliding_attention" && t != "full_attention")) {
        return bad("layer_types", absl::StrCat("unknown layer type ", t.dump(),
                                               " (known: sliding_attention, full_attention)"));
      }
      c.sliding_layers.push_back(t == "sliding_attention");
    }
  } else {
    for (const char* key : {"sliding_window_pattern", "_sliding_window_pattern"}) {
      int64_t n = 0;
      if (absl::Status s = get_int(key, n, false); !s.ok()) return s;
      if (n == 0) continue;
      if (n < 0 || n > (int64_t{1} << 20)) return bad(key, "must be in [1, 2^20]");
      c.sliding_layers = SlidingPattern(c.n_layers, n);
      break;
    }
  }
  for (const char* key : {"hidden_activation", "hidden_act"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_string()) return bad(key, "expected a string");
    c.activation = it->get<std::string>();
    break;
  }
  if (absl::Status s = get_float("rope_local_base_freq", c.rope_local_theta); !s.ok()) return s;
  if (absl::Status s = get_float("query_pre_attn_scalar", c.query_scale); !s.ok()) return s;
  if (auto bi = j.find("use_bidirectional_attention"); bi != j.end() && *bi == true) {
    return absl::UnimplementedError(absl::StrCat(
        path, ": use_bidirectional_attention: true; only causal (decoder) attention is supported"));
  }
  for (const char* key : {"final_logit_softcapping", "attn_logit_softcapping"}) {
    if (auto it = j.find(key); it != j.end() && !it->is_null()) {
      return absl::UnimplementedError(
          absl::StrCat(path, ": ", key, ": logit soft-capping is not supported"));
    }
  }
  if (auto tie = j.find("tie_word_embeddings"); tie != j.end() && tie->is_boolean()) {
    c.tied_embeddings = tie->get<bool>();
  }
  double partial_rotary = 1.0;
  if (absl::Status s = get_float("partial_rotary_factor", partial_rotary); !s.ok()) return s;
  if (partial_rotary != 1.0) {
    return absl::UnimplementedError(absl::StrCat(path, ": partial_rotary_factor: ", partial_rotary,
                                                 "; partial rotary embeddings are not supported"));
  }
  if (absl::Status s = ValidateConfig(c, path); !s.ok()) return s;
  return c;
}

}  // namespace tessera
