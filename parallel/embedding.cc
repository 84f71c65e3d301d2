#include "parallel/embedding.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/embedding.h"
#include "kernels/matmul.h"

namespace tessera::parallel {

VocabParallelEmbedding::VocabParallelEmbedding(kernels::OwnedTensor table_shard,
                                               int64_t vocab_begin, int64_t vocab,
                                               Communicator* comm)
    : table_(std::move(table_shard)), vocab_begin_(vocab_begin), vocab_(vocab), comm_(comm) {}

absl::Status VocabParallelEmbedding::Forward(kernels::Tensor out,
                                             std::span<const int32_t> ids) const {
  const int64_t rows = table_.cview().dim(0);
  const int64_t H = out.cols();
  if (comm_->size() == 1) {
    kernels::EmbeddingLookup(out, table_.cview(), ids.data(), static_cast<int64_t>(ids.size()));
    return absl::OkStatus();
  }
  std::memset(out.data, 0, sizeof(float) * out.numel());
  for (size_t t = 0; t < ids.size(); ++t) {
    const int64_t local = ids[t] - vocab_begin_;
    if (local < 0 || local >= rows) continue;
    const int32_t id = static_cast<int32_t>(local);
    kernels::Tensor row(out.as<float>() + t * H, kernels::DType::kF32, {1, H});
    kernels::EmbeddingLookup(row, table_.cview(), &id, 1);
  }
  return comm_->AllReduceSum(out);
}

ParallelLmHead::ParallelLmHead(kernels::OwnedTensor weight, Communicator* comm)
    : own_(std::move(weight)), comm_(comm) {}

ParallelLmHead::ParallelLmHead(const VocabParallelEmbedding* tied, Communicator* comm)
    : tied_(tied), comm_(comm) {}

absl::Status ParallelLmHead::Forward(kernels::Tensor out, kernels::ConstTensor x,
                                     float* scratch) const {
  const int tp = comm_->size();
  if (tp == 1) {
    kernels::MatMul(out, x, weight());
    return absl::OkStatus();
  }
  const int64_t T = x.rows();
  const int64_t Vl = weight().dim(0);
  std::vector<float> local(static_cast<size_t>(T * Vl));
  kernels::MatMul(kernels::Tensor(local.data(), kernels::DType::kF32, {T, Vl}), x, weight());
  const bool root = comm_->rank() == 0;
  kernels::Tensor gathered(scratch, kernels::DType::kF32, {root ? tp : 0, T, Vl});
  if (absl::Status s = comm_->Gather(
          gathered, kernels::ConstTensor(local.data(), kernels::DType::kF32, {T, Vl}), 0);
      !s.ok()) {
    return s;
  }
  if (!root) return absl::OkStatus();
  // [tp, T, Vl] -> [T, V]: the last shards' padding rows (V < tp * Vl) are dropped.
  float* y = out.as<float>();
  const int64_t V = out.cols();
  for (int r = 0; r < tp; ++r) {
    const int64_t n = std::clamp<int64_t>(V - r * Vl, 0, Vl);
    for (int64_t t = 0; t < T; ++t) {
      std::memcpy(y + t * V + r * Vl, scratch + (r * T + t) * Vl, sizeof(float) * n);
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::parallel
