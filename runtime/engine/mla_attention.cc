#include "runtime/engine/mla_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "kernels/cpu/check.h"
#include "kernels/matmul.h"
#include "kernels/paged_attention.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"

namespace tessera {
namespace {

using kernels::ConstTensor;
using kernels::DType;
using kernels::Tensor;

// dst row t (stride dst_stride) <- n floats of src row t (stride src_stride), for T rows.
void CopyRows(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t n,
              int64_t T) {
  for (int64_t t = 0; t < T; ++t)
    std::memcpy(dst + t * dst_stride, src + t * src_stride, sizeof(float) * n);
}

}  // namespace

MlaAttentionLayer::MlaAttentionLayer(MlaWeights weights, const MlaOptions& options)
    : w_(std::move(weights)), options_(options) {}

int64_t MlaAttentionLayer::scratch_per_token() const {
  const MlaOptions& o = options_;
  const int64_t Hq = o.attention.heads, R = o.attention.head_dim, N = o.nope_dim, r = o.kv_rank,
                Dv = o.value_dim;
  return Hq * (N + R) + o.q_rank + (r + R) + 2 * Hq * (r + R) + Hq * Dv + Hq * R + R +
         std::max(N, r) + std::max(r, Dv);
}

absl::Status MlaAttentionLayer::Forward(Tensor out, ConstTensor x, const AttentionStep& step,
                                        KvCache& cache, std::span<float> scratch) const {
  const MlaOptions& o = options_;
  const AttentionOptions& a = o.attention;
  const int64_t T = x.dim(0), Hq = a.heads, R = a.head_dim, N = o.nope_dim, r = o.kv_rank,
                Dv = o.value_dim, row = r + R;
  TESSERA_KCHECK(static_cast<int64_t>(scratch.size()) >= T * scratch_per_token(),
                 "latent attention scratch too small for the step");
  TESSERA_KCHECK(
      static_cast<int64_t>(step.positions.size()) == T && step.seqs.size() == step.paged.size(),
      "attention step: a position per token and a PagedSeq per sequence");
  float* q = scratch.data();               // [T, Hq*(N+R)]
  float* qa = q + T * Hq * (N + R);        // [T, q_rank]
  float* kv = qa + T * o.q_rank;           // [T, r+R]: the cache rows
  float* qp = kv + T * row;                // [T, Hq*(r+R)]: absorbed queries
  float* at = qp + T * Hq * row;           // [T, Hq*(r+R)]: attention output
  float* vo = at + T * Hq * row;           // [T, Hq*Dv]
  float* pe = vo + T * Hq * Dv;            // [T, Hq*R]: the queries' RoPE parts
  float* kpe = pe + T * Hq * R;            // [T, R]
  float* tin = kpe + T * R;                // [T, max(N, r)]
  float* tout = tin + T * std::max(N, r);  // [T, max(r, Dv)]

  if (w_.q_a) {
    const Tensor qa_t(qa, DType::kF32, {T, o.q_rank});
    w_.q_a->Forward(qa_t, x);
    kernels::RmsNorm(qa_t, qa_t, w_.q_a_norm->cview(), o.latent_norm_eps);
    w_.q.Forward(Tensor(q, DType::kF32, {T, Hq * (N + R)}), qa_t);
  } else {
    w_.q.Forward(Tensor(q, DType::kF32, {T, Hq * (N + R)}), x);
  }
  w_.kv_a.Forward(Tensor(kv, DType::kF32, {T, row}), x);
  for (int64_t t = 0; t < T; ++t) {  // the latent's RMSNorm, row by row (rows are r + R apart)
    const Tensor c(kv + t * row, DType::kF32, {1, r});
    kernels::RmsNorm(c, c, w_.kv_a_norm.cview(), o.latent_norm_eps);
  }
  // RoPE on the queries' and the key's RoPE dims.
  for (int64_t h = 0; h < Hq; ++h)
    CopyRows(pe + h * R, Hq * R, q + h * (N + R) + N, Hq * (N + R), R, T);
  CopyRows(kpe, R, kv + r, row, R, T);
  kernels::Rope(Tensor(pe, DType::kF32, {T, Hq * R}), step.positions.data(), R, a.rope_theta,
                a.rope_layout, a.rope_scaling);
  kernels::Rope(Tensor(kpe, DType::kF32, {T, R}), step.positions.data(), R, a.rope_theta,
                a.rope_layout, a.rope_scaling);
  CopyRows(kv + r, row, kpe, R, R, T);
  for (size_t b = 0; b < step.seqs.size(); ++b) {
    const kernels::PagedSeq& s = step.paged[b];
    cache.Write(a.layer, step.seqs[b], s.first_position, kv + s.q_begin * row, nullptr, s.q_len);
  }
  // q'_h = [W_UK_hᵀ q_nope_h | RoPE(q_pe_h)].
  for (int64_t h = 0; h < Hq; ++h) {
    CopyRows(tin, N, q + h * (N + R), Hq * (N + R), N, T);
    kernels::MatMul(Tensor(tout, DType::kF32, {T, r}), ConstTensor(tin, DType::kF32, {T, N}),
                    ConstTensor(w_.k_up.as<float>() + h * r * N, DType::kF32, {r, N}));
    CopyRows(qp + h * row, Hq * row, tout, r, r, T);
    CopyRows(qp + h * row + r, Hq * row, pe + h * R, Hq * R, R, T);
  }
  const float scale = a.scale > 0 ? a.scale : 1.0f / std::sqrt(static_cast<float>(N + R));
  kernels::PagedAttention(Tensor(at, DType::kF32, {T, Hq * row}), nullptr,
                          ConstTensor(qp, DType::kF32, {T, Hq * row}), cache.Layer(a.layer, 1),
                          step.paged, row, /*window=*/0, scale);
  // Each head's value: W_UV_h times the first r dims of its output (the latent's share).
  for (int64_t h = 0; h < Hq; ++h) {
    CopyRows(tin, r, at + h * row, Hq * row, r, T);
    kernels::MatMul(Tensor(tout, DType::kF32, {T, Dv}), ConstTensor(tin, DType::kF32, {T, r}),
                    ConstTensor(w_.v_up.as<float>() + h * Dv * r, DType::kF32, {Dv, r}));
    CopyRows(vo + h * Dv, Hq * Dv, tout, Dv, Dv, T);
  }
  return w_.o.Forward(out, ConstTensor(vo, DType::kF32, {T, Hq * Dv}));
}

}  // namespace tessera
