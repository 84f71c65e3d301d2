#include "runtime/engine/attention_layer.h"

#include <cmath>
#include <utility>

#include "kernels/cpu/check.h"
#include "kernels/rms_norm.h"

namespace tessera {

using kernels::ConstTensor;
using kernels::DType;
using kernels::Tensor;

AttentionLayer::AttentionLayer(AttentionWeights weights, const AttentionOptions& options)
    : w_(std::move(weights)), options_(options) {}

int64_t AttentionLayer::scratch_per_token() const {
  const int64_t D = options_.head_dim;
  return 2 * options_.heads * D + 2 * options_.kv_heads * D;  // q, attention out, k, v
}

int64_t AttentionLayer::bytes() const {
  int64_t b = w_.q.bytes() + w_.k.bytes() + w_.v.bytes() + w_.o.bytes();
  for (const auto* n : {&w_.q_norm, &w_.k_norm}) b += *n ? (*n)->bytes() : 0;
  return b;
}

absl::Status AttentionLayer::Forward(Tensor out, ConstTensor x, const AttentionStep& step,
                                     KvCache& cache, std::span<float> scratch) const {
  const AttentionOptions& o = options_;
  const int64_t T = x.dim(0), D = o.head_dim;
  const int64_t qd = o.heads * D, kvd = o.kv_heads * D;
  TESSERA_KCHECK(static_cast<int64_t>(scratch.size()) >= T * scratch_per_token(),
                 "attention scratch too small for the step");
  TESSERA_KCHECK(static_cast<int64_t>(step.positions.size()) == T &&
                     step.seqs.size() == step.paged.size(),
                 "attention step: a position per token and a PagedSeq per sequence");
  float* q = scratch.data();
  float* attn = q + T * qd;
  float* k = attn + T * qd;
  float* v = k + T * kvd;

  w_.q.Forward(Tensor(q, DType::kF32, {T, qd}), x);
  w_.k.Forward(Tensor(k, DType::kF32, {T, kvd}), x);
  w_.v.Forward(Tensor(v, DType::kF32, {T, kvd}), x);
  if (w_.q_norm) {  // RMSNorm over each head's D values
    const Tensor qh(q, DType::kF32, {T * o.heads, D}), kh(k, DType::kF32, {T * o.kv_heads, D});
    kernels::RmsNorm(qh, qh, w_.q_norm->cview(), o.norm_eps);
    kernels::RmsNorm(kh, kh, w_.k_norm->cview(), o.norm_eps);
  }
  kernels::Rope(Tensor(q, DType::kF32, {T, qd}), step.positions.data(), D, o.rope_theta,
                o.rope_layout, o.rope_scaling);
  kernels::Rope(Tensor(k, DType::kF32, {T, kvd}), step.positions.data(), D, o.rope_theta,
                o.rope_layout, o.rope_scaling);
  for (size_t b = 0; b < step.seqs.size(); ++b) {
    const kernels::PagedSeq& s = step.paged[b];
    cache.Write(o.layer, step.seqs[b], s.first_position, k + s.q_begin * kvd,
                v + s.q_begin * kvd, s.q_len);
  }
  kernels::PagedAttention(Tensor(attn, DType::kF32, {T, qd}), nullptr,
                          ConstTensor(q, DType::kF32, {T, qd}), cache.Layer(o.layer, o.kv_heads),
                          step.paged, D, o.window,
                          o.scale > 0 ? o.scale : 1.0f / std::sqrt(static_cast<float>(D)));
  return w_.o.Forward(out, ConstTensor(attn, DType::kF32, {T, qd}));
}

}  // namespace tessera
