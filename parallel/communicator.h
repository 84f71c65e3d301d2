// Collectives between the ranks of one group (a tensor-parallel group, an expert-parallel
// group, ...), device-neutral: buffers are kernels::Tensor views, so an MPI implementation
// (CPU tensors), an NCCL one (CUDA tensors) and an in-process one (threads, for tests) all
// fit behind it. Every call is collective: all ranks of the group make it, in the same
// order, with matching sizes. A failure (dead peer, timeout) is a Status, never a hang.
//
// Not thread-safe: one thread drives a communicator. Communicators are move-only owners of
// their group; layers borrow them (`Communicator&`) and never outlive them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/status.h"
#include "kernels/tensor.h"

namespace tessera::parallel {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // data [n] f32 on every rank <- elementwise sum over ranks.
  virtual absl::Status AllReduceSum(kernels::Tensor data) = 0;
  // out [size, n] <- in [n] of every rank, rank-major.
  virtual absl::Status AllGather(kernels::Tensor out, kernels::ConstTensor in) = 0;
  // out [n] on rank r <- sum over ranks of in [size, n] slice r.
  virtual absl::Status ReduceScatterSum(kernels::Tensor out, kernels::ConstTensor in) = 0;
  // Variable all-to-all: rank r sends send_counts[d] elements (consecutive in `in`, in
  // destination order) to each rank d, and receives recv_counts[s] from each rank s into
  // `out` in source order. Counts are in elements; rows of a [*, H] tensor are H elements.
  virtual absl::Status AllToAllV(kernels::Tensor out, std::span<const int64_t> recv_counts,
                                 kernels::ConstTensor in,
                                 std::span<const int64_t> send_counts) = 0;
  // data (any type, as bytes) on every rank <- data on `root`.
  virtual absl::Status Broadcast(kernels::Tensor data, int root) = 0;
  virtual absl::Status Barrier() = 0;
};

// The group of one: every collective is the identity (or a copy). What a model on one
// process is handed, so that model code is the same for one rank and many.
std::unique_ptr<Communicator> MakeSoloCommunicator();

}  // namespace tessera::parallel
