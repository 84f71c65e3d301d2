// Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2) on this rank: its heads' shard, with
// the KV cache holding, per token, only the compressed latent c (r values, RMS-normed) and
// one RoPE key k_pe (R values) that every head shares: r + R values per token and layer,
// whatever the head count.
//
// The model's definition, per head h (nope N, RoPE R, value dims Dv):
//   q_h = [q_nope_h (N) | q_pe_h (R)]    from x (directly, or through the low-rank q_a, its
//                                          RMSNorm and q_b)
//   [c | k_pe] = kv_a(x), c = RMSNorm(c)
//   k_h = [W_UK_h c | RoPE(k_pe)],  v_h = W_UV_h c       (W_UK_h [N, r], W_UV_h [Dv, r])
//   out = o(concat_h softmax(q_h · k_h * scale) v_h)
// computed without ever forming k_h or v_h ("absorbed"): q_h · k_h = (W_UK_hᵀ q_nope_h) · c +
// RoPE(q_pe_h) · RoPE(k_pe), so each head's query becomes q'_h = [W_UK_hᵀ q_nope_h | q_pe_h]
// (r + R), the cache row [c | k_pe] is its key and c (the row's first r values) its value,
// and W_UV_h is applied to the attention output: one kernels::PagedAttention call for the
// step (as multi-query attention of r + R head dims, the value read from the key rows of a
// shared_kv cache), then per-head matmuls.
//
// Tensor parallelism splits the heads: q_b (or q), the per-head up-projections and the
// output projection (row-parallel, one all-reduce) hold this rank's heads; q_a, kv_a and the
// cache rows are replicated (every head reads the same latent).
//
// Dims: T tokens in the step, H hidden, Hq this rank's heads. Immutable after construction;
// Forward is const and takes its scratch.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "absl/status/status.h"
#include "kernels/buffer.h"
#include "parallel/linear.h"
#include "runtime/engine/attention_layer.h"
#include "runtime/engine/kv_cache.h"

namespace tessera {

struct MlaOptions {
  // layer, heads (Hq here), head_dim (the RoPE dims R), norm_eps, RoPE, scale (of q'·row;
  // 0: (N + R)^-1/2); kv_heads and window are unused (one latent row, full causal).
  AttentionOptions attention;
  int64_t kv_rank = 0;    // r
  int64_t q_rank = 0;     // of q_a; 0: q projected directly
  int64_t nope_dim = 0;   // N
  int64_t value_dim = 0;  // Dv
  // RMSNorm epsilon of q_a's and the latent's norms: transformers' fixed 1e-6 for Hugging
  // Face checkpoints, the model's epsilon for GGUF files (as llama.cpp).
  float latent_norm_eps = 1e-6f;
};

// This rank's shard of one layer's latent-attention weights.
struct MlaWeights {
  std::optional<parallel::ColumnParallelLinear> q_a;  // [q_rank, H], replicated
  std::optional<kernels::OwnedTensor> q_a_norm;       // [q_rank] f32
  parallel::ColumnParallelLinear q;                   // [Hq*(N+R), q_rank or H]: q_b or q
  parallel::ColumnParallelLinear kv_a;                // [r+R, H], replicated
  kernels::OwnedTensor kv_a_norm;                     // [r] f32
  kernels::OwnedTensor k_up;                          // [Hq, r, N] f32: W_UK_hᵀ per head
  kernels::OwnedTensor v_up;                          // [Hq, Dv, r] f32: W_UV_h per head
  parallel::RowParallelLinear o;                      // [H, Hq*Dv] of this rank's heads
};

class MlaAttentionLayer {
 public:
  MlaAttentionLayer(MlaWeights weights, const MlaOptions& options);

  // The cache row: r + R values, one "KV head", stored once (KvCacheShape::shared_kv).
  int64_t cache_row() const { return options_.kv_rank + options_.attention.head_dim; }
  int64_t scratch_per_token() const;
  // As AttentionLayer::Forward.
  absl::Status Forward(kernels::Tensor out, kernels::ConstTensor x, const AttentionStep& step,
                       KvCache& cache, std::span<float> scratch) const;

  const MlaOptions& options() const { return options_; }

 private:
  MlaWeights w_;
  MlaOptions options_;
};

}  // namespace tessera
