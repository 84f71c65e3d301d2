// Causal scaled-dot-product attention of new queries over a KV cache.
//
// Dims: T query tokens, S cached keys/values, Hq query heads, Hkv KV heads (Hq a multiple
// of Hkv: MHA, GQA or MQA), D head dim.
//   out [T, Hq*D] f32    q [T, Hq*D] f32    k, v [S, Hkv*D] f32
//   q_positions [T], kv_positions [S]: absolute positions (any order, gaps allowed)
//   lse [T, Hq] f32 (second overload): log-sum-exp of the visible scaled scores
// Query head h reads KV head h / (Hq/Hkv). Key s is visible to query t iff
// kv_pos[s] <= q_pos[t] and (window == 0 or q_pos[t] - kv_pos[s] < window).
// out[t,h] = sum_s softmax_s(scale * q·k_s) v_s over visible keys, in f32 with an online
// (blockwise) softmax. A query that sees no key gets out = 0 and lse = -inf, so merging it
// with another partial result (ring attention) is a no-op:
//   lse = max(a,b) + log1p(exp(min-max)); out = out_a exp(lse_a-lse) + out_b exp(lse_b-lse).
// Work is split over (token, head) pairs on the default thread pool. out must not alias
// q, k or v. Shapes are CHECKed. Thread-safe for distinct outputs.
#pragma once

#include <cstdint>

#include "kernels/tensor.h"

namespace tessera::kernels {

void Attention(Tensor out, ConstTensor q, ConstTensor k, ConstTensor v,
               const int32_t* q_positions, const int32_t* kv_positions, int64_t head_dim,
               int64_t window, float scale);
void Attention(Tensor out, Tensor lse, ConstTensor q, ConstTensor k, ConstTensor v,
               const int32_t* q_positions, const int32_t* kv_positions, int64_t head_dim,
               int64_t window, float scale);
// Per (token, head): scores, softmax, weighted sum, written plainly.
void AttentionReference(Tensor out, Tensor lse, ConstTensor q, ConstTensor k, ConstTensor v,
                        const int32_t* q_positions, const int32_t* kv_positions,
                        int64_t head_dim, int64_t window, float scale);

}  // namespace tessera::kernels
