// Collectives between the ranks of one group (a tensor-parallel group, an expert-parallel
// group, ...), device-neutral: buffers are kernels::Tensor views, so an MPI implementation
// (CPU tensors), an NCCL one (CUDA tensors) and an in-process one (threads, for tests) all
// fit behind it. Every call is collective: all ranks of the group make it, in the same
// order, with matching sizes. A failure (dead peer, timeout) is a Status, never a hang.
//
// Not thread-safe: one thread drives a communicator. Communicators are move-only owners of
// their group; layers borrow them (`Communicator&`) and never outlive them.
//
// After a call fails with DeadlineExceeded (or a transport error) the group is out of step:
// implementations refuse every later call with the same status code. The intended response
// is to tear the replica down, not to retry.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/tensor.h"

namespace tessera::parallel {

// What a communicator call was; indexes CollectiveStats. kSend/kRecv are the two halves of
// StartSendRecv.
enum class CollectiveKind : uint8_t {
  kAllReduce,
  kAllGather,
  kReduceScatter,
  kAllToAllV,
  kBroadcast,
  kBarrier,
  kSend,
  kRecv,
  kGather,
};
inline constexpr int kNumCollectiveKinds = 9;

constexpr const char* CollectiveName(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::kAllReduce:
      return "all-reduce";
    case CollectiveKind::kAllGather:
      return "all-gather";
    case CollectiveKind::kReduceScatter:
      return "reduce-scatter";
    case CollectiveKind::kAllToAllV:
      return "all-to-all-v";
    case CollectiveKind::kBroadcast:
      return "broadcast";
    case CollectiveKind::kBarrier:
      return "barrier";
    case CollectiveKind::kSend:
      return "send";
    case CollectiveKind::kRecv:
      return "recv";
    case CollectiveKind::kGather:
      return "gather";
  }
  return "?";  // unreachable: every enumerator is handled above
}

// Per-rank counters, for `--stats`. A call is counted once its arguments are accepted,
// whether or not it then completes. `bytes` is this rank's payload: the buffer it hands in
// (all-reduce: data; all-gather, reduce-scatter: in; all-to-all-v: the elements it sends;
// broadcast: data, on every rank; gather: in; send: bytes sent; recv: bytes received;
// barrier: 0).
struct CollectiveStats {
  struct Counter {
    int64_t calls = 0;
    int64_t bytes = 0;
  };
  std::array<Counter, kNumCollectiveKinds> by_kind{};
  // Wall time spent inside collectives, from issue to completion (MPI only; 0 elsewhere).
  double seconds = 0;

  const Counter& operator[](CollectiveKind k) const { return by_kind[static_cast<int>(k)]; }
  Counter& operator[](CollectiveKind k) { return by_kind[static_cast<int>(k)]; }
  void Count(CollectiveKind k, int64_t bytes) {
    ++(*this)[k].calls;
    (*this)[k].bytes += bytes;
  }
  int64_t total_bytes() const {
    int64_t b = 0;
    for (const Counter& c : by_kind) b += c.bytes;
    return b;
  }
};

// An exchange started by StartSendRecv. Both buffers handed to StartSendRecv must stay
// alive and untouched (the receive buffer unread) until Wait returns. Wait is called once;
// destroying an exchange that was not waited for waits for it (bounded by the
// communicator's timeout) and drops the status.
class PendingSendRecv {
 public:
  virtual ~PendingSendRecv() = default;
  virtual absl::Status Wait() = 0;
};

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
                                 kernels::ConstTensor in, std::span<const int64_t> send_counts) = 0;
  // out [size, n] on `root` <- in [n] of every rank, rank-major (any type, as bytes). `out`
  // is not touched on other ranks and may be empty there. What results only the leader
  // needs (logits) travel by.
  virtual absl::Status Gather(kernels::Tensor out, kernels::ConstTensor in, int root) = 0;
  // data (any type, as bytes) on every rank <- data on `root`.
  virtual absl::Status Broadcast(kernels::Tensor data, int root) = 0;
  virtual absl::Status Barrier() = 0;

  // Point-to-point, for rings (context-parallel attention): sends `send` to rank `dst` and
  // receives `recv` from rank `src`, returning at once so that compute can overlap the
  // transfer; Wait() on the result completes it. Not collective: only the peers must match
  // (each send to d pairs with d's next receive from this rank, in order, with equal
  // bytes). Any dtype, as bytes. The default is Unimplemented (for test fakes).
  virtual absl::StatusOr<std::unique_ptr<PendingSendRecv>> StartSendRecv(kernels::ConstTensor send,
                                                                         int dst,
                                                                         kernels::Tensor recv,
                                                                         int src) {
    return absl::UnimplementedError("this communicator has no point-to-point send/recv");
  }
  // StartSendRecv, then Wait.
  absl::Status SendRecv(kernels::ConstTensor send, int dst, kernels::Tensor recv, int src) {
    absl::StatusOr<std::unique_ptr<PendingSendRecv>> p = StartSendRecv(send, dst, recv, src);
    if (!p.ok()) return p.status();
    return (*p)->Wait();
  }

  // This rank's counters since construction. The default (test fakes) counts nothing.
  virtual CollectiveStats stats() const { return {}; }
};

// The group of one: every collective is the identity (or a copy). What a model on one
// process is handed, so that model code is the same for one rank and many.
std::unique_ptr<Communicator> MakeSoloCommunicator();

}  // namespace tessera::parallel
