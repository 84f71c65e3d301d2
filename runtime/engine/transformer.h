// A decoder-only transformer (Llama family: pre-RMSNorm, GQA attention with RoPE, SwiGLU
// MLP, tied or separate LM head; and what ArchSpec adds: qk-norm, QKV bias, post-norms,
// GeGLU, scaled embeddings, local and global layers, multi-head latent attention), built from
// the parallel layers so that a tensor-parallel communicator distributes it without changes
// here.
//
// Forward() runs one step over a batch of sequences: each contributes a chunk of new tokens
// (a prefill chunk of any length, or one decode token) whose K/V are appended to the paged
// cache, and all tokens of the batch go through each linear layer together (matrix-matrix).
// Each layer's attention is an AttentionLayer or, with latent attention, an
// MlaAttentionLayer (its heads' shard), one batched
// kernels::PagedAttention call for the whole step reading K/V straight from the block
// tables. A sequence may appear once per step.
//
// Dims: T tokens in the step, H hidden, Hq/Hkv heads (this rank's share), D head dim,
// F FFN size (this rank's share), V vocab. Loading is the only fallible setup step;
// a loaded Transformer is immutable, and Forward() may be called from one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/buffer.h"
#include "kernels/rope.h"
#include "parallel/communicator.h"
#include "parallel/embedding.h"
#include "parallel/linear.h"
#include "parallel/moe.h"
#include "parallel/topology.h"
#include "runtime/engine/attention_layer.h"
#include "runtime/engine/kv_cache.h"
#include "runtime/engine/mla_attention.h"
#include "runtime/model/model_source.h"
#include "runtime/model/weight_loader.h"
#include "runtime/models/arch.h"

namespace tessera {

struct LoadOptions {
  // Dequantize every weight to f32 at load: the exact path, for comparing with references.
  bool exact = false;
  // The expert-parallel group of MoE layers (not owned; null: every expert on this rank).
  // Its ranks must see the same tokens (tp = 1, or tp = ep = the world): each holds E/ep
  // experts and the layer ends in one all-reduce.
  parallel::Communicator* ep = nullptr;
};

// One sequence's part of a step.
struct SeqChunk {
  SeqId seq;
  std::span<const int32_t> tokens;  // new tokens; positions start at the cache's length
  bool all_logits = false;          // logits for every token, not only the last
  bool logits = true;               // false: no logits at all (a non-final prefill chunk)
};

// The shape the tp/ep rules look at (parallel::ModelShape), with the largest storage block
// of each kind of weight a row-parallel layer cuts by columns (attention output, MLP and
// expert down projections) in this file: 32 for Q8_0, 256 for K-quants, 1 for floats.
parallel::ModelShape ShapeOf(const ModelSource& source);

class Transformer {
 public:
  // `tp` is this rank's tensor-parallel group (a one-rank communicator on one process);
  // it must outlive the model.
  static absl::StatusOr<std::unique_ptr<Transformer>> Load(const ModelSource& source,
                                                           parallel::Communicator* tp,
                                                           const LoadOptions& options);

  // Runs one step. On the tp group's rank 0, `logits` receives, in batch order, V floats
  // per sequence (its last token), per token (all_logits) or none (logits = false: the LM
  // head is skipped); on other ranks it is left empty (they compute their vocabulary shard
  // and send it to rank 0). Token ids, duplicate sequences and the KV cache capacity are
  // checked before anything changes; on any error every sequence's length and stored K/V
  // are as before the step.
  absl::Status Forward(std::span<const SeqChunk> batch, KvCache& cache,
                       std::vector<float>& logits) const;

  const ModelConfig& config() const { return config_; }
  // This rank's tensor-parallel group.
  const parallel::Communicator& tp() const { return *tp_; }
  const ArchSpec& arch() const { return *arch_; }
  // The KV cache shape for this rank, with room for `tokens` positions in `block_size`
  // blocks of `type` elements.
  KvCacheShape CacheShape(int64_t tokens, int64_t block_size = 16,
                          kernels::DType type = kernels::DType::kF32) const;
  // Bytes of weights this rank holds.
  int64_t weight_bytes() const { return weight_bytes_; }
  // Weight bytes one decode step reads on this rank outside MoE layers: every weight,
  // except that an untied embedding table is read one row at a time. With
  // moe_bytes_read_last_forward(), the memory roofline of decoding.
  int64_t decode_weight_bytes() const;
  // MoE models: routed (token, choice) pairs per expert, per layer, since load; empty for
  // dense models. What users of MoE models watch for load balance.
  std::vector<std::vector<int64_t>> ExpertLoad() const;
  // MoE models: weight bytes the MoE layers hold, and those the last Forward read (router,
  // the experts that got tokens, shared experts): a decode step reads only its top-k.
  int64_t moe_weight_bytes() const;
  // Bytes of this rank's routed experts (E/ep of them; no router, no shared expert).
  int64_t routed_expert_bytes() const { return routed_expert_bytes_; }
  int64_t moe_bytes_read_last_forward() const;

 private:
  struct Layer {
    kernels::OwnedTensor attn_norm, ffn_norm;  // [H] f32
    std::optional<kernels::OwnedTensor> attn_post_norm, ffn_post_norm;  // [H] f32 (Gemma 3)
    AttentionLayer attention;                  // this rank's heads
    std::optional<MlaAttentionLayer> mla;      // instead, in latent-attention models
    parallel::ColumnParallelLinear gate, up;   // [F, H]  (dense MLP)
    parallel::RowParallelLinear down;          // [H, F]
    std::unique_ptr<parallel::MoeLayer> moe;   // instead of the dense MLP in MoE layers
  };
  absl::StatusOr<std::unique_ptr<parallel::MoeLayer>> LoadMoe(WeightLoader& loader,
                                                             const TensorNames& names,
                                                             int64_t layer,
                                                             const LoadOptions& options);
  Transformer() = default;
  absl::Status LoadWeights(const ModelSource& source, const LoadOptions& options);
  absl::Status LoadRopeFactors(const ModelSource& source);
  // A weight as the file stores it, or dequantized to f32 on the exact path.
  static absl::StatusOr<kernels::OwnedTensor> LoadWeight(WeightLoader& loader,
                                                         const LoadOptions& options,
                                                         const std::string& name,
                                                         const std::vector<int64_t>& shape,
                                                         Split split);
  // Layer l's latent attention (transformer_mla.cc).
  absl::StatusOr<MlaAttentionLayer> LoadMla(WeightLoader& loader, const TensorNames& names,
                                            int64_t l, const LoadOptions& options) const;
  // Layer l's attention options (its window, RoPE base and scaling, score scale).
  AttentionOptions LayerAttention(int64_t l) const;

  // Immutable after Load().
  ModelConfig config_;
  const ArchSpec* arch_ = nullptr;
  parallel::Communicator* tp_ = nullptr;  // not owned
  bool gguf_ = false;                     // weights from a GGUF file (else Hugging Face)
  kernels::RopeLayout rope_layout_ = kernels::RopeLayout::kRotateHalf;
  kernels::RopeScaling rope_scaling_{};
  int64_t local_heads_ = 0, local_kv_heads_ = 0, local_ffn_ = 0;
  Split kv_split_;  // which KV-head rows this rank loads (replicated when tp > Hkv)
  parallel::VocabParallelEmbedding embedding_;
  std::vector<Layer> layers_;
  kernels::OwnedTensor final_norm_;
  parallel::ParallelLmHead lm_head_;
  int64_t weight_bytes_ = 0;
  int64_t routed_expert_bytes_ = 0;
};

}  // namespace tessera
