#include "runtime/engine/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "kernels/activation.h"
#include "kernels/rms_norm.h"
#include "runtime/model/weight_loader.h"

namespace tessera {
namespace {

using kernels::ConstTensor;
using kernels::DType;
using kernels::OwnedTensor;
using kernels::Tensor;

Tensor F32View(std::vector<float>& v, int64_t rows, int64_t cols) {
  return Tensor(v.data(), DType::kF32, {rows, cols});
}

void AddInPlace(std::vector<float>& x, const std::vector<float>& y, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace

absl::StatusOr<std::unique_ptr<Transformer>> Transformer::Load(const ModelSource& source,
                                                               parallel::Communicator* tp,
                                                               const LoadOptions& options) {
  if (source.config() == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(source.path(), ": holds no model weights (tokenizer files only)"));
  }
  std::unique_ptr<Transformer> m(new Transformer());
  m->config_ = *source.config();
  auto arch = FindArch(m->config_.arch);
  if (!arch.ok()) return absl::Status(arch.status().code(), absl::StrCat(source.path(), ": ", arch.status().message()));
  m->arch_ = *arch;
  m->tp_ = tp;
  m->gguf_ = source.format() == ModelSource::Format::kGguf;
  m->rope_layout_ = source.format() == ModelSource::Format::kGguf ? m->arch_->gguf_rope
                                                                   : m->arch_->hf_rope;
  const ModelConfig& c = m->config_;
  absl::StatusOr<kernels::RopeScaling> scaling = RopeScalingOf(c);
  if (!scaling.ok()) {
    return absl::Status(scaling.status().code(), absl::StrCat(source.path(), ": ", scaling.status().message()));
  }
  m->rope_scaling_ = *std::move(scaling);
  if (absl::Status s = m->LoadRopeFactors(source); !s.ok()) return s;
  // GGUF files that do not record the local-layer pattern or base get the architecture's.
  if (m->gguf_ && m->config_.sliding_layers.empty() && m->arch_->gguf_sliding_pattern > 0) {
    m->config_.sliding_layers = SlidingPattern(c.n_layers, m->arch_->gguf_sliding_pattern);
    if (absl::Status s = ValidateConfig(m->config_, source.path()); !s.ok()) return s;
  }
  if (m->gguf_ && m->config_.rope_local_theta == 0) {
    m->config_.rope_local_theta = m->arch_->gguf_local_rope_theta;
  }
  if (!c.activation.empty()) {
    const bool gelu = m->arch_->activation == Activation::kGeluTanh;
    const bool matches = gelu ? (c.activation == "gelu_pytorch_tanh" || c.activation == "gelu_tanh")
                              : (c.activation == "silu" || c.activation == "swish");
    if (!matches) {
      return absl::UnimplementedError(absl::StrCat(
          source.path(), ": hidden activation '", c.activation, "' is not supported for ",
          c.arch, " (it runs ", gelu ? "gelu_pytorch_tanh" : "silu", ")"));
    }
  }
  const int W = tp->size();
  // Query heads and the FFN split evenly over the tp ranks, the vocabulary in padded shards;
  // KV heads too, or, when tp exceeds them, each KV head is replicated on tp/Hkv adjacent
  // ranks (parallel::CheckTensorParallel).
  const bool kv_replicated = W > c.n_kv_heads;
  if (absl::Status s = parallel::CheckTensorParallel(W, ShapeOf(source)); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source.path(), ": ", s.message()));
  }
  const int ep = options.ep != nullptr ? options.ep->size() : 1;
  if (c.n_experts > 0 && W > 1 && ep != W) {
    return absl::UnimplementedError(absl::StrCat(
        "MoE models with tensor parallelism need expert parallelism over the same ranks "
        "(--ep ", W, "); splitting each expert over tp ranks is not supported yet"));
  }
  if (c.n_experts > 0 && c.n_experts % ep != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--ep ", ep, " does not divide the ",
                                                   c.n_experts, " experts"));
  }
  m->local_heads_ = c.n_heads / W;
  m->local_kv_heads_ = kv_replicated ? 1 : c.n_kv_heads / W;
  m->kv_split_ = kv_replicated ? Split::Rows(tp->rank() / (W / static_cast<int>(c.n_kv_heads)),
                                             static_cast<int>(c.n_kv_heads))
                               : Split::Rows(tp->rank(), W);
  m->local_ffn_ = c.ffn / W;
  if (c.kv_lora_rank > 0 && m->arch_ != &DeepseekV3Arch()) {
    return absl::UnimplementedError(absl::StrCat(source.path(), ": latent attention (kv_lora_rank ",
                                                 c.kv_lora_rank, ") in a ", c.arch, " model"));
  }
  if (absl::Status s = m->LoadWeights(source, options); !s.ok()) return s;
  return m;
}

parallel::ModelShape ShapeOf(const ModelSource& source) {
  const ModelConfig& c = *source.config();
  // (Latent attention: the output projection's columns are each head's value dims.)
  parallel::ModelShape m{.n_heads = c.n_heads,
                         .n_kv_heads = c.n_kv_heads,
                         .head_dim = c.kv_lora_rank > 0 ? c.v_head_dim : c.head_dim,
                         .ffn = c.n_experts > 0 && c.dense_layers == 0 ? 0 : c.ffn,
                         .n_experts = c.n_experts,
                         .moe_ffn = c.expert_ffn,
                         .vocab = c.vocab};
  // Row-parallel weights are cut by columns: the largest block of each kind bounds its cut.
  auto arch = FindArch(c.arch);
  if (!arch.ok()) return m;
  const TensorNames names =
      source.format() == ModelSource::Format::kGguf ? GgufTensorNames() : HfTensorNames(**arch);
  WeightLoader loader(source);
  // Up to the first layer the file lacks (a hostile config's layer count costs nothing).
  for (int64_t l = 0; l < c.n_layers && loader.Info(LayerName(names.o, l)) != nullptr; ++l) {
    for (auto [pattern, block] : {std::pair{&names.o, &m.o_block}, std::pair{&names.down, &m.down_block},
                                  std::pair{&names.expert_down, &m.expert_down_block}}) {
      if (pattern->empty()) continue;
      if (const TensorInfo* t = loader.Info(LayerName(*pattern, l))) {
        *block = std::max(*block, kernels::Info(t->type).block_elems);
      }
    }
  }
  return m;
}

// Llama 3.x GGUFs carry their RoPE scaling as per-pair frequency divisors (rope_freqs.weight,
// [D/2] f32); a checkpoint with the config's llama3 scaling instead has none.
absl::Status Transformer::LoadRopeFactors(const ModelSource& source) {
  WeightLoader loader(source);
  constexpr const char* kName = "rope_freqs.weight";
  if (!loader.Has(kName)) return absl::OkStatus();
  const int64_t half = config_.head_dim / 2;
  auto f = loader.LoadF32(kName, {half}, Split::None());
  if (!f.ok()) return f.status();
  const float* v = f->cview().as<const float>();
  for (int64_t i = 0; i < half; ++i) {
    if (!std::isfinite(v[i]) || v[i] <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(source.path(), ": ", kName, "[", i, "] = ",
                                                     v[i], " is not a positive frequency factor"));
    }
  }
  rope_scaling_.freq_factors.assign(v, v + half);
  return absl::OkStatus();
}

absl::Status Transformer::LoadWeights(const ModelSource& source, const LoadOptions& options) {
  const ModelConfig& c = config_;
  const TensorNames names =
      source.format() == ModelSource::Format::kGguf ? GgufTensorNames() : HfTensorNames(*arch_);
  WeightLoader loader(source);
  const int rank = tp_->rank(), W = tp_->size();
  auto load = [&](const std::string& name, std::vector<int64_t> shape, Split split) {
    return LoadWeight(loader, options, name, shape, split);
  };
  const int64_t H = c.hidden, D = c.head_dim, V = c.vocab;
  // A norm weight, as the scale it stands for (Gemma's Hugging Face weights hold scale - 1).
  const float norm_offset = gguf_ ? 0.0f : arch_->hf_norm_offset;
  auto load_norm = [&](const std::string& name, int64_t n) -> absl::StatusOr<OwnedTensor> {
    auto w = loader.LoadF32(name, {n}, Split::None());
    if (w.ok() && norm_offset != 0) {
      for (int64_t i = 0; i < n; ++i) w->as<float>()[i] += norm_offset;
    }
    return w;
  };

  const int64_t vocab_shard = (V + W - 1) / W;  // the last shards padded (embedding.h)
  auto emb = load(names.embedding, {V, H}, Split::PaddedRows(rank, W));
  if (!emb.ok()) return emb.status();
  embedding_ = parallel::VocabParallelEmbedding(std::move(*emb), rank * vocab_shard, V, tp_);

  // A layer count the file does not back would size layers_ before any tensor is missed.
  if (const std::string last = LayerName(names.attn_norm, c.n_layers - 1); !loader.Has(last)) {
    return absl::NotFoundError(absl::StrCat(source.path(), ": the config has ", c.n_layers,
                                            " layers, but tensor ", last, " is missing"));
  }
  layers_.resize(c.n_layers);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    Layer& L = layers_[l];
    auto n = [&](const std::string& pattern) { return LayerName(pattern, l); };
    auto attn_norm = load_norm(n(names.attn_norm), H);
    auto ffn_norm = load_norm(n(names.ffn_norm), H);
    if (!attn_norm.ok()) return attn_norm.status();
    if (!ffn_norm.ok()) return ffn_norm.status();
    if (c.n_experts > 0 && l >= c.dense_layers) {
      auto moe = LoadMoe(loader, names, l, options);
      if (!moe.ok()) return moe.status();
      L.moe = std::move(*moe);
    } else {
      auto gate = load(n(names.gate), {c.ffn, H}, Split::Rows(rank, W));
      auto up = load(n(names.up), {c.ffn, H}, Split::Rows(rank, W));
      auto down = load(n(names.down), {H, c.ffn}, Split::Cols(rank, W));
      for (const auto* s : {&gate, &up, &down}) {
        if (!s->ok()) return s->status();
      }
      L.gate = parallel::ColumnParallelLinear(std::move(*gate), std::nullopt);
      L.up = parallel::ColumnParallelLinear(std::move(*up), std::nullopt);
      L.down = parallel::RowParallelLinear(std::move(*down), std::nullopt, tp_);
    }
    L.attn_norm = std::move(*attn_norm);
    L.ffn_norm = std::move(*ffn_norm);
    if (arch_->post_norms) {
      auto ap = load_norm(n(names.attn_post_norm), H);
      auto fp = load_norm(n(names.ffn_post_norm), H);
      if (!ap.ok()) return ap.status();
      if (!fp.ok()) return fp.status();
      L.attn_post_norm = std::move(*ap);
      L.ffn_post_norm = std::move(*fp);
    }
    if (c.kv_lora_rank > 0) {
      auto mla = LoadMla(loader, names, l, options);
      if (!mla.ok()) return mla.status();
      L.mla.emplace(*std::move(mla));
      continue;
    }
    auto q = load(n(names.q), {c.n_heads * D, H}, Split::Rows(rank, W));
    auto k = load(n(names.k), {c.n_kv_heads * D, H}, kv_split_);
    auto v = load(n(names.v), {c.n_kv_heads * D, H}, kv_split_);
    auto o = load(n(names.o), {H, c.n_heads * D}, Split::Cols(rank, W));
    for (const auto* s : {&q, &k, &v, &o}) {
      if (!s->ok()) return s->status();
    }
    AttentionWeights attention;
    std::optional<OwnedTensor> qb, kb, vb;
    if (arch_->qkv_bias) {
      auto qbs = loader.LoadF32(n(names.q_bias), {c.n_heads * D}, Split::Rows(rank, W));
      auto kbs = loader.LoadF32(n(names.k_bias), {c.n_kv_heads * D}, kv_split_);
      auto vbs = loader.LoadF32(n(names.v_bias), {c.n_kv_heads * D}, kv_split_);
      for (const auto* s : {&qbs, &kbs, &vbs}) {
        if (!s->ok()) return s->status();
      }
      qb = std::move(*qbs), kb = std::move(*kbs), vb = std::move(*vbs);
    }
    if (arch_->qk_norm) {
      auto qn = load_norm(n(names.q_norm), D);
      auto kn = load_norm(n(names.k_norm), D);
      if (!qn.ok()) return qn.status();
      if (!kn.ok()) return kn.status();
      attention.q_norm = std::move(*qn);
      attention.k_norm = std::move(*kn);
    }
    attention.q = parallel::ColumnParallelLinear(std::move(*q), std::move(qb));
    attention.k = parallel::ColumnParallelLinear(std::move(*k), std::move(kb));
    attention.v = parallel::ColumnParallelLinear(std::move(*v), std::move(vb));
    attention.o = parallel::RowParallelLinear(std::move(*o), std::nullopt, tp_);
    L.attention = AttentionLayer(std::move(attention), LayerAttention(l));
  }
  auto final_norm = load_norm(names.final_norm, H);
  if (!final_norm.ok()) return final_norm.status();
  final_norm_ = std::move(*final_norm);
  if (loader.Has(names.lm_head)) {
    auto head = load(names.lm_head, {V, H}, Split::PaddedRows(rank, W));
    if (!head.ok()) return head.status();
    lm_head_ = parallel::ParallelLmHead(std::move(*head), tp_);
  } else {
    lm_head_ = parallel::ParallelLmHead(&embedding_, tp_);
  }
  weight_bytes_ = loader.bytes_loaded();
  return absl::OkStatus();
}

AttentionOptions Transformer::LayerAttention(int64_t l) const {
  const ModelConfig& c = config_;
  AttentionOptions o{.layer = l,
                     .heads = local_heads_,
                     .kv_heads = local_kv_heads_,
                     .head_dim = c.head_dim,
                     .norm_eps = static_cast<float>(c.norm_eps),
                     .rope_theta = static_cast<float>(c.rope_theta),
                     .rope_layout = rope_layout_,
                     .rope_scaling = rope_scaling_};
  // Local (sliding-window) layers: the pattern's (Load filled in the architecture's for
  // GGUF files without one), else every layer when there is a window.
  const bool local = c.sliding_layers.empty() ? c.sliding_window.has_value()
                                              : c.sliding_layers[l] != 0;
  if (local) {
    o.window = c.sliding_window.value_or(0);
    // A local RoPE base, where the model has one, comes without the global RoPE scaling.
    if (c.rope_local_theta > 0) {
      o.rope_theta = static_cast<float>(c.rope_local_theta);
      o.rope_scaling = {};
    }
  }
  double query_scale = c.query_scale;
  // Gemma 3 27B scales by (hidden / heads)^-1/2 = 168^-1/2, not by its head dim 128; its
  // GGUF files do not record query_pre_attn_scalar, and 62 layers is how llama.cpp tells it.
  if (query_scale == 0 && gguf_ && arch_ == &Gemma3Arch() && c.n_layers == 62) {
    query_scale = static_cast<double>(c.hidden) / static_cast<double>(c.n_heads);
  }
  if (query_scale > 0) o.scale = static_cast<float>(1.0 / std::sqrt(query_scale));
  // DeepSeek with RoPE scaling (YaRN): scores scaled by mscale(factor, mscale_all_dim)^2
  // beyond (N + R)^-1/2 (ValidateConfig keeps it within f32).
  if (c.kv_lora_rank > 0 && !c.rope_scaling.empty() && c.rope_mscale_all_dim > 0) {
    const double m = YarnMscale(c.rope_factor, c.rope_mscale_all_dim);
    o.scale = static_cast<float>(m * m / std::sqrt(static_cast<double>(c.qk_nope_dim + c.head_dim)));
  }
  return o;
}

absl::StatusOr<OwnedTensor> Transformer::LoadWeight(WeightLoader& loader,
                                                    const LoadOptions& options,
                                                    const std::string& name,
                                                    const std::vector<int64_t>& shape, Split split) {
  return options.exact ? loader.LoadF32(name, shape, split) : loader.Load(name, shape, split);
}

absl::StatusOr<std::unique_ptr<parallel::MoeLayer>> Transformer::LoadMoe(
    WeightLoader& loader, const TensorNames& names, int64_t layer,
    const LoadOptions& options) {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden, E = c.n_experts, Fe = c.expert_ffn;
  auto n = [&](const std::string& pattern) { return LayerName(pattern, layer); };
  auto load = [&](const std::string& name, std::vector<int64_t> shape) {
    return LoadWeight(loader, options, name, shape, Split::None());
  };
  // Experts stacked [E, rows, cols]: one GGUF tensor, or one Hugging Face tensor per expert.
  // This rank's experts: [first, first + local) of E, on ep rank r of P.
  const int P = options.ep != nullptr ? options.ep->size() : 1;
  const int r = options.ep != nullptr ? options.ep->rank() : 0;
  const int64_t local = E / P, first = r * local;
  auto stacked = [&](const std::string& pattern, int64_t rows,
                     int64_t cols) -> absl::StatusOr<OwnedTensor> {
    if (pattern.find("{e}") == std::string::npos) {
      return LoadWeight(loader, options, n(pattern), {E, rows, cols}, Split::Rows(r, P));
    }
    std::optional<OwnedTensor> out;
    for (int64_t e = first; e < first + local; ++e) {
      const std::string name =
          absl::StrReplaceAll(n(pattern), {{"{e}", absl::StrCat(e)}});
      auto one = load(name, {rows, cols});
      if (!one.ok()) return one.status();
      if (!out) {
        auto stack = OwnedTensor::Create(one->cview().type, {local, rows, cols},
                                         absl::StrCat(n(pattern), " (", local, " experts)"));
        if (!stack.ok()) return stack.status();
        out = std::move(*stack);
      }
      if (one->cview().type != out->cview().type) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ": type ", kernels::Name(one->cview().type), " differs from expert 0's ",
            kernels::Name(out->cview().type)));
      }
      std::memcpy(out->as<uint8_t>() + (e - first) * one->bytes(), one->as<uint8_t>(),
                  one->bytes());
    }
    return std::move(*out);
  };
  parallel::MoeWeights w;
  auto router = loader.LoadF32(n(names.router), {E, H}, Split::None());
  if (!router.ok()) return router.status();
  w.router = std::move(*router);
  auto gate = stacked(names.expert_gate, Fe, H);
  auto up = stacked(names.expert_up, Fe, H);
  auto down = stacked(names.expert_down, H, Fe);
  for (const auto* s : {&gate, &up, &down}) {
    if (!s->ok()) return s->status();
  }
  w.gate = std::move(*gate), w.up = std::move(*up), w.down = std::move(*down);
  routed_expert_bytes_ += w.gate.bytes() + w.up.bytes() + w.down.bytes();
  if (c.shared_expert_ffn > 0) {
    const int64_t Fs = c.shared_expert_ffn;
    auto sg = load(n(names.shared_gate), {Fs, H});
    auto su = load(n(names.shared_up), {Fs, H});
    auto sd = load(n(names.shared_down), {H, Fs});
    for (const auto* s : {&sg, &su, &sd}) {
      if (!s->ok()) return s->status();
    }
    parallel::SharedExpertWeights shared{std::move(*sg), std::move(*su), std::move(*sd), {}};
    // The shared expert's sigmoid gate: [1, H] in Hugging Face files, [H] in GGUF.
    const std::vector<int64_t> gate_shape =
        gguf_ ? std::vector<int64_t>{H} : std::vector<int64_t>{1, H};
    if (loader.Has(n(names.shared_router))) {
      auto g = loader.LoadF32(n(names.shared_router), gate_shape, Split::None());
      if (!g.ok()) return g.status();
      OwnedTensor row(kernels::DType::kF32, {1, H});
      std::memcpy(row.as<float>(), g->as<float>(), sizeof(float) * H);
      shared.sigmoid_gate = std::move(row);
    }
    w.shared = std::move(shared);
  }
  kernels::RoutingParams routing;
  routing.method = c.routing == "sigmoid" ? kernels::RoutingMethod::kSigmoidGroupedTopK
                                          : kernels::RoutingMethod::kSoftmaxTopK;
  routing.top_k = static_cast<int32_t>(c.n_experts_used);
  routing.normalize_top_k = c.norm_topk_prob.value_or(arch_->norm_topk_default);
  routing.n_group = static_cast<int32_t>(c.expert_groups);
  routing.topk_group = static_cast<int32_t>(c.expert_groups_used);
  routing.scaling_factor = static_cast<float>(c.routed_scale);
  if (routing.method == kernels::RoutingMethod::kSigmoidGroupedTopK && loader.Has(n(names.router_bias))) {
    auto bias = loader.LoadF32(n(names.router_bias), {E}, Split::None());
    if (!bias.ok()) return bias.status();
    w.selection_bias = std::move(*bias);
  }
  if (P == 1) return parallel::MoeLayer::Create(std::move(w), routing, tp_);
  return parallel::MoeLayer::Create(std::move(w), routing, options.ep,
                                    parallel::ExpertParallelism::kReplicatedTokens);
}

std::vector<std::vector<int64_t>> Transformer::ExpertLoad() const {
  std::vector<std::vector<int64_t>> load;
  for (const Layer& L : layers_) {
    if (L.moe) load.push_back(L.moe->tokens_per_expert());
  }
  return load;
}

int64_t Transformer::moe_weight_bytes() const {
  int64_t bytes = 0;
  for (const Layer& L : layers_) bytes += L.moe ? L.moe->bytes() : 0;
  return bytes;
}

int64_t Transformer::moe_bytes_read_last_forward() const {
  int64_t bytes = 0;
  for (const Layer& L : layers_) bytes += L.moe ? L.moe->bytes_read_last_forward() : 0;
  return bytes;
}

int64_t Transformer::decode_weight_bytes() const {
  if (lm_head_.tied()) return weight_bytes_ - moe_weight_bytes();
  return weight_bytes_ - moe_weight_bytes() - embedding_.bytes() +
         embedding_.bytes() / embedding_.table().dim(0);
}

KvCacheShape Transformer::CacheShape(int64_t tokens, int64_t block_size,
                                     kernels::DType type) const {
  // Latent attention: one row of the latent and the RoPE key per token, for every head.
  const bool latent = config_.kv_lora_rank > 0;
  return KvCacheShape{.layers = config_.n_layers,
                      .kv_dim = latent ? config_.kv_lora_rank + config_.head_dim
                                       : local_kv_heads_ * config_.head_dim,
                      .block_size = block_size,
                      .num_blocks = (tokens + block_size - 1) / block_size,
                      .type = type,
                      .shared_kv = latent};
}

absl::Status Transformer::Forward(std::span<const SeqChunk> batch, KvCache& cache,
                                  std::vector<float>& logits) const {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden, V = c.vocab, F = local_ffn_;

  // Validate and plan before anything changes.
  std::vector<int32_t> ids, positions;
  std::vector<KvCache::Append> appends;
  int64_t out_rows = 0;
  for (const SeqChunk& s : batch) {
    if (s.tokens.empty()) return absl::InvalidArgumentError("a sequence chunk has no tokens");
    const int64_t start = cache.length(s.seq);
    for (size_t i = 0; i < s.tokens.size(); ++i) {
      if (s.tokens[i] < 0 || s.tokens[i] >= V) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", s.tokens[i], " is outside the vocabulary [0, ", V, ")"));
      }
      ids.push_back(s.tokens[i]);
      positions.push_back(static_cast<int32_t>(start + i));
    }
    appends.push_back({s.seq, static_cast<int64_t>(s.tokens.size())});
    out_rows += s.all_logits ? static_cast<int64_t>(s.tokens.size()) : s.logits ? 1 : 0;
  }
  auto plan = cache.PlanAppend(appends);
  if (!plan.ok()) return plan.status();
  std::vector<int64_t> starts;
  for (const SeqChunk& s : batch) starts.push_back(cache.length(s.seq));
  // Every buffer of the step is sized before the cache changes: a step too large for memory
  // is RESOURCE_EXHAUSTED with nothing appended.
  const int64_t T = static_cast<int64_t>(ids.size());
  // Logits reach the tp group's rank 0 only (the leader samples); others hold none.
  const bool logits_here = tp_->rank() == 0;
  const int64_t logit_rows = logits_here ? out_rows : 0;
  const int64_t scratch_rows = tp_->size() > 1 ? logit_rows : 0;
  // The gathered shards hold tp * ceil(V / tp) columns, padding included.
  const int64_t W = tp_->size(), padded_vocab = W * ((V + W - 1) / W);
  std::vector<float> x, h, o, attn, g, u, sel, scratch;
  int64_t attn_floats = 0;
  for (const Layer& L : layers_) {
    attn_floats = std::max(attn_floats, L.mla ? L.mla->scratch_per_token() : L.attention.scratch_per_token());
  }
  {
    using kernels::CheckedProduct;
    const std::optional<int64_t> floats = kernels::CheckedSum(
        {CheckedProduct({T, 3 * H + attn_floats + 2 * F}), CheckedProduct({out_rows, H}),
         CheckedProduct({logit_rows, V}), CheckedProduct({scratch_rows, padded_vocab})});
    const std::string what = absl::StrCat("the activations and logits of a ", T, "-token step");
    if (absl::Status s = kernels::CheckAvailable(
            floats ? CheckedProduct({*floats, static_cast<int64_t>(sizeof(float))}) : std::nullopt,
            what);
        !s.ok()) {
      return s;
    }
    try {
      for (std::vector<float>* b : {&x, &h, &o}) b->resize(T * H);
      attn.resize(T * attn_floats);
      for (std::vector<float>* b : {&g, &u}) b->resize(T * F);
      sel.resize(out_rows * H);
      logits.resize(logit_rows * V);
      scratch.resize(scratch_rows * padded_vocab);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(absl::StrCat(what, ": the allocation failed"));
    }
  }
  // From here the step's blocks are attached; lengths advance only when it succeeds, so a
  // failure below leaves every sequence's length and stored K/V as they were.
  // (A step whose blocks a step plan already reserved has no ops: the generation, which
  // the leader's plans are stamped with, then stays in step with the leader's.)
  if (!plan->ops.empty()) {
    if (absl::Status s = cache.Reserve(*plan); !s.ok()) return s;
  }
  std::vector<SeqId> seqs;
  std::vector<kernels::PagedSeq> paged;
  {
    int64_t row = 0;
    for (size_t b = 0; b < batch.size(); ++b) {
      const int64_t n = static_cast<int64_t>(batch[b].tokens.size());
      seqs.push_back(batch[b].seq);
      paged.push_back({.q_begin = row, .q_len = n, .first_position = starts[b],
                       .kv_len = starts[b] + n, .blocks = cache.blocks().BlockTable(batch[b].seq)});
      row += n;
    }
  }
  const AttentionStep step{.seqs = seqs, .paged = paged, .positions = positions};

  if (absl::Status s = embedding_.Forward(F32View(x, T, H), ids); !s.ok()) return s;
  if (arch_->scale_embedding) {
    const float scale = static_cast<float>(std::sqrt(static_cast<double>(H)));
    for (float& v : x) v *= scale;
  }
  for (const Layer& L : layers_) {
    kernels::RmsNorm(F32View(h, T, H), F32View(x, T, H), L.attn_norm.cview(), c.norm_eps);
    if (absl::Status s = L.mla ? L.mla->Forward(F32View(o, T, H), F32View(h, T, H), step, cache, attn)
                               : L.attention.Forward(F32View(o, T, H), F32View(h, T, H), step, cache, attn);
        !s.ok()) {
      return s;
    }
    if (L.attn_post_norm) {
      kernels::RmsNorm(F32View(o, T, H), F32View(o, T, H), L.attn_post_norm->cview(), c.norm_eps);
    }
    AddInPlace(x, o, T * H);
    kernels::RmsNorm(F32View(h, T, H), F32View(x, T, H), L.ffn_norm.cview(), c.norm_eps);
    if (L.moe) {
      if (absl::Status s = L.moe->Forward(F32View(o, T, H), F32View(h, T, H)); !s.ok()) return s;
    } else {
      L.gate.Forward(F32View(g, T, F), F32View(h, T, H));
      L.up.Forward(F32View(u, T, F), F32View(h, T, H));
      if (arch_->activation == Activation::kGeluTanh) {
        kernels::GeGlu(F32View(g, T, F), F32View(g, T, F), F32View(u, T, F));
      } else {
        kernels::SwiGlu(F32View(g, T, F), F32View(g, T, F), F32View(u, T, F));
      }
      if (absl::Status s = L.down.Forward(F32View(o, T, H), F32View(g, T, F)); !s.ok()) return s;
    }
    if (L.ffn_post_norm) {
      kernels::RmsNorm(F32View(o, T, H), F32View(o, T, H), L.ffn_post_norm->cview(), c.norm_eps);
    }
    AddInPlace(x, o, T * H);
  }

  // Final norm and LM head on the rows that want logits.
  int64_t row = 0, out = 0;
  for (const SeqChunk& s : batch) {
    const int64_t n = static_cast<int64_t>(s.tokens.size());
    const int64_t first = s.all_logits ? row : row + n - 1;
    const int64_t count = s.all_logits ? n : s.logits ? 1 : 0;
    if (count > 0) {  // (sel is empty, data() null, when no row wants logits)
      std::memcpy(sel.data() + out * H, x.data() + first * H, sizeof(float) * count * H);
    }
    out += count;
    row += n;
  }
  if (out_rows > 0) {  // every rank takes the same branch: the batch is the same everywhere
    kernels::RmsNorm(F32View(sel, out_rows, H), F32View(sel, out_rows, H), final_norm_.cview(),
                     c.norm_eps);
    if (absl::Status s = lm_head_.Forward(F32View(logits, logit_rows, V), F32View(sel, out_rows, H),
                                          scratch.data());
        !s.ok()) {
      return s;
    }
  }
  return cache.Commit(*plan);
}

}  // namespace tessera
