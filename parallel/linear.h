// Tensor-parallel linear layers (Megatron-style). Each owns only its weight shard and is
// handed the communicator of its tensor-parallel group; with a one-rank group they are
// plain linear layers.
//
// Dims: T tokens, K input features, N output features, tp ranks in the group.
// Weights are stored as a Linear layer's [out, in] (PyTorch order), in any kernels::DType.
// Forward is thread-compatible (const, scratch passed in); the layers are immutable.
#pragma once

#include <optional>

#include "absl/status/status.h"
#include "kernels/buffer.h"
#include "parallel/communicator.h"

namespace tessera::parallel {

// in: Replicated [T, K] -> out: Shard(-1) [T, N/tp]. No communication.
class ColumnParallelLinear {
 public:
  ColumnParallelLinear() = default;
  // weight: this rank's rows [N/tp, K]; bias: this rank's slice [N/tp] f32, if any.
  ColumnParallelLinear(kernels::OwnedTensor weight, std::optional<kernels::OwnedTensor> bias);

  void Forward(kernels::Tensor out, kernels::ConstTensor x) const;
  int64_t out_features() const { return weight_.cview().dim(0); }
  int64_t in_features() const { return weight_.cview().dim(1); }
  int64_t bytes() const;

 private:
  kernels::OwnedTensor weight_;
  std::optional<kernels::OwnedTensor> bias_;
};

// in: Shard(-1) [T, K/tp] -> out: Replicated [T, N] (one all-reduce; bias added once,
// after the reduction).
class RowParallelLinear {
 public:
  RowParallelLinear() = default;
  // weight: this rank's columns [N, K/tp]; bias: the whole [N] f32, if any.
  RowParallelLinear(kernels::OwnedTensor weight, std::optional<kernels::OwnedTensor> bias,
                    Communicator* comm);

  absl::Status Forward(kernels::Tensor out, kernels::ConstTensor x) const;
  int64_t out_features() const { return weight_.cview().dim(0); }
  int64_t bytes() const;

 private:
  kernels::OwnedTensor weight_;
  std::optional<kernels::OwnedTensor> bias_;
  Communicator* comm_ = nullptr;  // not owned
};

// Adds bias [N] to every row of x [T, N].
void AddBias(kernels::Tensor x, kernels::ConstTensor bias);

}  // namespace tessera::parallel
