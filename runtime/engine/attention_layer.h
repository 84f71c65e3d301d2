// One transformer layer's self-attention on this rank: its heads' shard of the Q, K, V and
// O projections (tensor parallelism over heads: Q/K/V column-parallel, O row-parallel, one
// all-reduce), optional per-head RMSNorm of Q and K (qk-norm), RoPE at explicit positions,
// the step's new K/V appended to its layer of the paged cache, and one batched
// kernels::PagedAttention call over every sequence of the step.
//
// Dims: T tokens in the step, H hidden, Hq/Hkv this rank's query/KV heads, D head dim.
// The layer is immutable after construction; Forward is const and takes its scratch, so a
// loaded model can be shared (one step at a time per KV cache).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "absl/status/status.h"
#include "kernels/buffer.h"
#include "kernels/paged_attention.h"
#include "kernels/rope.h"
#include "parallel/linear.h"
#include "runtime/engine/kv_cache.h"

namespace tessera {

struct AttentionOptions {
  int64_t layer = 0;     // which layer of the KV cache this one writes and reads
  int64_t heads = 0;     // Hq on this rank
  int64_t kv_heads = 0;  // Hkv on this rank (Hq a multiple of it)
  int64_t head_dim = 0;  // D
  float norm_eps = 1e-6f;                // qk-norm's epsilon
  float rope_theta = 10000.0f;
  kernels::RopeLayout rope_layout = kernels::RopeLayout::kRotateHalf;
  kernels::RopeScaling rope_scaling{};
  int64_t window = 0;  // sliding window in positions; 0: full causal attention
  float scale = 0;     // of the scores q.k; 0: 1 / sqrt(D)
};

// This rank's shard of one layer's attention weights.
struct AttentionWeights {
  parallel::ColumnParallelLinear q, k, v;  // [Hq*D | Hkv*D, H], biases included if any
  parallel::RowParallelLinear o;           // [H, Hq*D] of this rank's heads
  std::optional<kernels::OwnedTensor> q_norm, k_norm;  // [D] f32, with qk-norm only
};

// What every layer of one step shares: each sequence's cache id and its rows, positions
// and visible keys (kernels::PagedSeq; kv_len counts the step's new tokens), and every
// token's position [T]. Built once per step by the model, after the cache reserved blocks.
struct AttentionStep {
  std::span<const SeqId> seqs;
  std::span<const kernels::PagedSeq> paged;  // one per sequence, in the same order
  std::span<const int32_t> positions;
};

class AttentionLayer {
 public:
  AttentionLayer() = default;
  AttentionLayer(AttentionWeights weights, const AttentionOptions& options);

  // Floats of scratch per token that Forward needs.
  int64_t scratch_per_token() const;
  // out [T, H] = the attention block of x [T, H] (normed input; no residual add). Writes
  // the step's K/V into the cache at the sequences' positions, which Reserve must already
  // cover. `scratch` holds at least T * scratch_per_token() floats. The one failure is the
  // O projection's all-reduce (a dead or diverged peer).
  absl::Status Forward(kernels::Tensor out, kernels::ConstTensor x, const AttentionStep& step,
                       KvCache& cache, std::span<float> scratch) const;

  const AttentionOptions& options() const { return options_; }
  int64_t bytes() const;  // of this rank's weights

 private:
  AttentionWeights w_;
  AttentionOptions options_;
};

}  // namespace tessera
