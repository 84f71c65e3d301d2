#include "parallel/fault_communicator.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tessera::parallel {

FaultInjectingCommunicator::FaultInjectingCommunicator(std::unique_ptr<Communicator> base)
    : base_(std::move(base)) {}

void FaultInjectingCommunicator::DelayCall(int64_t n, absl::Duration delay) {
  std::lock_guard lock(mu_);
  delays_[n] = delay;
}

void FaultInjectingCommunicator::FailCall(int64_t n, absl::Status status) {
  std::lock_guard lock(mu_);
  failures_[n] = std::move(status);
}

void FaultInjectingCommunicator::DieAtCall(int64_t n) {
  std::lock_guard lock(mu_);
  die_at_ = n;
}

int64_t FaultInjectingCommunicator::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}

absl::Status FaultInjectingCommunicator::Before(CollectiveKind kind) {
  absl::Duration delay = absl::ZeroDuration();
  {
    std::lock_guard lock(mu_);
    const int64_t n = ++calls_;
    if (die_at_ > 0 && n >= die_at_) {
      return absl::UnavailableError(absl::StrCat("rank ", base_->rank(), " died at call #", die_at_,
                                                 " (injected); this was ", CollectiveName(kind),
                                                 " call #", n));
    }
    if (auto it = failures_.find(n); it != failures_.end()) return it->second;
    if (auto it = delays_.find(n); it != delays_.end()) delay = it->second;
  }
  if (delay > absl::ZeroDuration()) absl::SleepFor(delay);
  return absl::OkStatus();
}

absl::Status FaultInjectingCommunicator::AllReduceSum(kernels::Tensor data) {
  if (absl::Status s = Before(CollectiveKind::kAllReduce); !s.ok()) return s;
  return base_->AllReduceSum(data);
}

absl::Status FaultInjectingCommunicator::AllGather(kernels::Tensor out, kernels::ConstTensor in) {
  if (absl::Status s = Before(CollectiveKind::kAllGather); !s.ok()) return s;
  return base_->AllGather(out, in);
}

absl::Status FaultInjectingCommunicator::ReduceScatterSum(kernels::Tensor out,
                                                          kernels::ConstTensor in) {
  if (absl::Status s = Before(CollectiveKind::kReduceScatter); !s.ok()) return s;
  return base_->ReduceScatterSum(out, in);
}

absl::Status FaultInjectingCommunicator::AllToAllV(kernels::Tensor out,
                                                   std::span<const int64_t> recv_counts,
                                                   kernels::ConstTensor in,
                                                   std::span<const int64_t> send_counts) {
  if (absl::Status s = Before(CollectiveKind::kAllToAllV); !s.ok()) return s;
  return base_->AllToAllV(out, recv_counts, in, send_counts);
}

absl::Status FaultInjectingCommunicator::Gather(kernels::Tensor out, kernels::ConstTensor in,
                                                int root) {
  if (absl::Status s = Before(CollectiveKind::kGather); !s.ok()) return s;
  return base_->Gather(out, in, root);
}

absl::Status FaultInjectingCommunicator::Broadcast(kernels::Tensor data, int root) {
  if (absl::Status s = Before(CollectiveKind::kBroadcast); !s.ok()) return s;
  return base_->Broadcast(data, root);
}

absl::Status FaultInjectingCommunicator::Barrier() {
  if (absl::Status s = Before(CollectiveKind::kBarrier); !s.ok()) return s;
  return base_->Barrier();
}

absl::StatusOr<std::unique_ptr<PendingSendRecv>> FaultInjectingCommunicator::StartSendRecv(
    kernels::ConstTensor send, int dst, kernels::Tensor recv, int src) {
  if (absl::Status s = Before(CollectiveKind::kSend); !s.ok()) return s;
  return base_->StartSendRecv(send, dst, recv, src);
}

}  // namespace tessera::parallel
