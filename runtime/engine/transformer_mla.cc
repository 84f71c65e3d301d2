// Loading one layer's multi-head latent attention (DeepSeek-V3, Kimi-K2): this rank's heads of
// the query and output projections and of the latent's up-projections, the rest replicated.
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/engine/transformer.h"

namespace tessera {

using kernels::DType;
using kernels::OwnedTensor;

absl::StatusOr<MlaAttentionLayer> Transformer::LoadMla(WeightLoader& loader,
                                                       const TensorNames& names, int64_t l,
                                                       const LoadOptions& options) const {
  const ModelConfig& c = config_;
  const int rank = tp_->rank(), W = tp_->size();
  const int64_t H = c.hidden, Hq = c.n_heads, Hl = local_heads_, R = c.head_dim, N = c.qk_nope_dim,
                r = c.kv_lora_rank, Dv = c.v_head_dim, qr = c.q_lora_rank;
  auto n = [&](const std::string& pattern) { return LayerName(pattern, l); };
  auto load = [&](const std::string& name, std::vector<int64_t> shape, Split split) {
    return LoadWeight(loader, options, name, shape, split);
  };
  MlaWeights w;
  if (qr > 0) {
    auto qa = load(n(names.q_a), {qr, H}, Split::None());
    auto norm = loader.LoadF32(n(names.q_a_norm), {qr}, Split::None());
    auto qb = load(n(names.q_b), {Hq * (N + R), qr}, Split::Rows(rank, W));
    for (const auto* s : {&qa, &norm, &qb}) {
      if (!s->ok()) return s->status();
    }
    w.q_a.emplace(std::move(*qa), std::nullopt);
    w.q_a_norm = std::move(*norm);
    w.q = parallel::ColumnParallelLinear(std::move(*qb), std::nullopt);
  } else {
    auto q = load(n(names.q), {Hq * (N + R), H}, Split::Rows(rank, W));
    if (!q.ok()) return q.status();
    w.q = parallel::ColumnParallelLinear(std::move(*q), std::nullopt);
  }
  auto kv_a = load(n(names.kv_a), {r + R, H}, Split::None());
  auto kv_norm = loader.LoadF32(n(names.kv_a_norm), {r}, Split::None());
  auto o = load(n(names.o), {H, Hq * Dv}, Split::Cols(rank, W));
  for (const auto* s : {&kv_a, &kv_norm, &o}) {
    if (!s->ok()) return s->status();
  }
  w.kv_a = parallel::ColumnParallelLinear(std::move(*kv_a), std::nullopt);
  w.kv_a_norm = std::move(*kv_norm);
  w.o = parallel::RowParallelLinear(std::move(*o), std::nullopt, tp_);

  // The up-projections, in f32: split per head as llama.cpp writes them now, or one kv_b
  // (Hugging Face, older GGUF files) whose rows are, per head, N key rows then Dv value rows.
  if (!names.k_b.empty() && loader.Has(n(names.k_b))) {
    auto k_b = loader.LoadF32(n(names.k_b), {Hq, r, N}, Split::Rows(rank, W));
    auto v_b = loader.LoadF32(n(names.v_b), {Hq, Dv, r}, Split::Rows(rank, W));
    if (!k_b.ok()) return k_b.status();
    if (!v_b.ok()) return v_b.status();
    w.k_up = std::move(*k_b);
    w.v_up = std::move(*v_b);
  } else {
    auto kv_b = loader.LoadF32(n(names.kv_b), {Hq * (N + Dv), r}, Split::Rows(rank, W));
    if (!kv_b.ok()) return kv_b.status();
    auto k_up =
        OwnedTensor::Create(DType::kF32, {Hl, r, N}, absl::StrCat(n(names.kv_b), " (keys)"));
    auto v_up =
        OwnedTensor::Create(DType::kF32, {Hl, Dv, r}, absl::StrCat(n(names.kv_b), " (values)"));
    if (!k_up.ok()) return k_up.status();
    if (!v_up.ok()) return v_up.status();
    const float* src = kv_b->as<const float>();
    float* ku = k_up->as<float>();
    for (int64_t h = 0; h < Hl; ++h) {
      const float* head = src + h * (N + Dv) * r;
      for (int64_t j = 0; j < N; ++j) {  // key row j of head h -> column j of W_UK_hᵀ
        for (int64_t i = 0; i < r; ++i) ku[(h * r + i) * N + j] = head[j * r + i];
      }
      std::memcpy(v_up->as<float>() + h * Dv * r, head + N * r, sizeof(float) * Dv * r);
    }
    w.k_up = std::move(*k_up);
    w.v_up = std::move(*v_up);
  }
  const MlaOptions mla{.attention = LayerAttention(l),
                       .kv_rank = r,
                       .q_rank = qr,
                       .nope_dim = N,
                       .value_dim = Dv,
                       .latent_norm_eps = gguf_ ? static_cast<float>(c.norm_eps) : 1e-6f};
  return MlaAttentionLayer(std::move(w), mla);
}

}  // namespace tessera
