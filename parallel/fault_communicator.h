// A Communicator that forwards to another and injects faults on the way, for tests of what
// a group does when one rank is slow, fails or dies (LevelDB's fault-injection Env, over
// its EnvWrapper).
//
// Calls are numbered from 1 on this rank, counting every Communicator call that moves data
// (collectives and StartSendRecv; rank()/size()/stats() are not calls). Faults:
//   DelayCall(n, d)   sleep d before forwarding call n (a straggler);
//   FailCall(n, s)    call n returns s without reaching the group (its peers then see this
//                     rank missing);
//   DieAtCall(n)      from call n on, return Unavailable without reaching the group: the
//                     rank has stopped participating, so its peers time out.
// stats() forwards: calls that never reached the group are not counted.
//
// Thread-safety: as Communicator (one driving thread); the fault setters may be called from
// another thread while it runs (guarded by a mutex).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "absl/time/time.h"
#include "parallel/communicator.h"

namespace tessera::parallel {

class FaultInjectingCommunicator final : public Communicator {
 public:
  explicit FaultInjectingCommunicator(std::unique_ptr<Communicator> base);

  void DelayCall(int64_t n, absl::Duration delay);
  void FailCall(int64_t n, absl::Status status);
  void DieAtCall(int64_t n);
  int64_t calls() const;  // calls made so far

  Communicator& base() { return *base_; }

  int rank() const override { return base_->rank(); }
  int size() const override { return base_->size(); }
  absl::Status AllReduceSum(kernels::Tensor data) override;
  absl::Status AllGather(kernels::Tensor out, kernels::ConstTensor in) override;
  absl::Status ReduceScatterSum(kernels::Tensor out, kernels::ConstTensor in) override;
  absl::Status AllToAllV(kernels::Tensor out, std::span<const int64_t> recv_counts,
                         kernels::ConstTensor in, std::span<const int64_t> send_counts) override;
  absl::Status Gather(kernels::Tensor out, kernels::ConstTensor in, int root) override;
  absl::Status Broadcast(kernels::Tensor data, int root) override;
  absl::Status Barrier() override;
  absl::StatusOr<std::unique_ptr<PendingSendRecv>> StartSendRecv(kernels::ConstTensor send, int dst,
                                                                 kernels::Tensor recv,
                                                                 int src) override;
  CollectiveStats stats() const override { return base_->stats(); }

 private:
  // Counts the call, sleeps if delayed; a non-OK result means "do not forward".
  absl::Status Before(CollectiveKind kind);

  // Immutable after construction.
  std::unique_ptr<Communicator> base_;

  mutable std::mutex mu_;
  // Guarded by mu_.
  int64_t calls_ = 0;
  int64_t die_at_ = 0;  // 0: never
  std::map<int64_t, absl::Duration> delays_;
  std::map<int64_t, absl::Status> failures_;
};

}  // namespace tessera::parallel
