// N ranks as threads of one process: the communicator unit tests use (the TP test runs
// column- then row-parallel linear on 1, 2, 4 ranks in milliseconds, no MPI).
//
// MakeGroup(n) returns one communicator per rank; each is driven by its own thread (one
// thread per communicator, as the Communicator contract says), and they may be destroyed in
// any order (the shared rendezvous state lives until the last one goes).
//
// How a collective runs: each rank copies its input into the group's round for its k-th
// collective call (k counted per rank), waits until all n ranks have posted round k, then
// computes its own output from the posted copies, in rank order (so every rank gets a
// bitwise-identical reduction). Because inputs are copied, a rank that gives up never
// leaves a peer reading freed memory. Every wait has a deadline (the group's timeout):
// DeadlineExceeded names the collective, the call number and the ranks that did not
// arrive; the group is then poisoned, so every rank's current and later calls fail with
// that status at once instead of each waiting out its own timeout.
//
// Payloads must be CPU tensors. Reductions are f32; the rest move any dtype as bytes
// (counts in elements, whole blocks for quantized types).
//
// Thread-safety: a communicator is driven by one thread; different ranks' communicators
// are used concurrently (that is the point).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "parallel/communicator.h"

namespace tessera::parallel {

class InProcessCommunicator final : public Communicator {
 public:
  static constexpr absl::Duration kDefaultTimeout = absl::Seconds(5);

  // n >= 1 communicators, rank i at index i.
  static std::vector<std::unique_ptr<Communicator>> MakeGroup(
      int n, absl::Duration timeout = kDefaultTimeout);

  ~InProcessCommunicator() override;
  InProcessCommunicator(const InProcessCommunicator&) = delete;
  InProcessCommunicator& operator=(const InProcessCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override;

  absl::Status AllReduceSum(kernels::Tensor data) override;
  absl::Status AllGather(kernels::Tensor out, kernels::ConstTensor in) override;
  absl::Status ReduceScatterSum(kernels::Tensor out, kernels::ConstTensor in) override;
  absl::Status AllToAllV(kernels::Tensor out, std::span<const int64_t> recv_counts,
                         kernels::ConstTensor in, std::span<const int64_t> send_counts) override;
  absl::Status Gather(kernels::Tensor out, kernels::ConstTensor in, int root) override;
  absl::Status Broadcast(kernels::Tensor data, int root) override;
  absl::Status Barrier() override;
  // The send is copied into the peer's mailbox at once; Wait() takes the next message
  // from `src` (FIFO per pair) or times out.
  absl::StatusOr<std::unique_ptr<PendingSendRecv>> StartSendRecv(kernels::ConstTensor send, int dst,
                                                                 kernels::Tensor recv,
                                                                 int src) override;
  CollectiveStats stats() const override { return stats_; }

  struct Group;  // the shared rendezvous state (inprocess_communicator.cc)
  struct Post;   // one rank's contribution to one round

 private:
  InProcessCommunicator(std::shared_ptr<Group> group, int rank);

  // Posts `post` as this rank's round seq_, waits for all ranks, checks that they made the
  // same call, then runs `compute` on the round's posts (rank order, unlocked).
  absl::Status Collective(
      Post post, const std::function<absl::Status(const std::vector<const Post*>&)>& compute);

  // Immutable after construction.
  std::shared_ptr<Group> group_;  // shared by the group's n communicators
  int rank_;
  // Used only by the thread driving this rank.
  uint64_t seq_ = 0;  // collective calls posted so far
  CollectiveStats stats_;
};

}  // namespace tessera::parallel
