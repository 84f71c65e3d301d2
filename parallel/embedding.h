// Vocab-parallel token embedding and LM head. Each rank owns rows
// [vocab_begin, vocab_begin + Vs) of the [V, H] table, Vs = ceil(V / tp) (the LM head may
// share it when the model ties its embeddings). When tp does not divide V the last shards
// are padded with zero rows to Vs (as other engines do), so every rank gathers the same
// count; padding is never looked up and its logits are dropped.
//
// Dims: T tokens, H hidden, V vocab, tp ranks. Immutable after construction.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "kernels/buffer.h"
#include "parallel/communicator.h"

namespace tessera::parallel {

// ids: Replicated [T] -> out: Replicated [T, H] (rows from the owning rank, zeros
// elsewhere, then one all-reduce).
class VocabParallelEmbedding {
 public:
  VocabParallelEmbedding() = default;
  VocabParallelEmbedding(kernels::OwnedTensor table_shard, int64_t vocab_begin, int64_t vocab,
                         Communicator* comm);

  // Ids must lie in [0, V): the caller checks them at the boundary.
  absl::Status Forward(kernels::Tensor out, std::span<const int32_t> ids) const;
  kernels::ConstTensor table() const { return table_.cview(); }
  int64_t vocab_begin() const { return vocab_begin_; }
  int64_t vocab() const { return vocab_; }
  int64_t bytes() const { return table_.bytes(); }

 private:
  kernels::OwnedTensor table_;  // [Vs, H], zero rows past V
  int64_t vocab_begin_ = 0;
  int64_t vocab_ = 0;
  Communicator* comm_ = nullptr;  // not owned
};

// in: Replicated [T, H] -> out: [T, V] on the group's rank 0 only (local logits
// [T, V/tp], one gather to rank 0): only the leader samples, so no other rank receives
// the full logits.
class ParallelLmHead {
 public:
  ParallelLmHead() = default;
  // `weight` [Vs, H] of this rank (padded), or null to use the tied embedding's table.
  ParallelLmHead(kernels::OwnedTensor weight, Communicator* comm);
  ParallelLmHead(const VocabParallelEmbedding* tied, Communicator* comm);

  // scratch: [tp * T * Vs] f32 on rank 0 when tp > 1 (unused otherwise). `out` [T, V] is
  // written on rank 0 only; other ranks may pass an empty one.
  absl::Status Forward(kernels::Tensor out, kernels::ConstTensor x, float* scratch) const;
  int64_t bytes() const { return own_.bytes(); }
  bool tied() const { return tied_ != nullptr; }

 private:
  kernels::ConstTensor weight() const { return tied_ ? tied_->table() : own_.cview(); }

  kernels::OwnedTensor own_;
  const VocabParallelEmbedding* tied_ = nullptr;  // not owned
  Communicator* comm_ = nullptr;                  // not owned
};

}  // namespace tessera::parallel
