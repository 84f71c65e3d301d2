#include <cstring>

#include "absl/strings/str_cat.h"
#include "parallel/communicator.h"

namespace tessera::parallel {
namespace {

int64_t Bytes(const kernels::ConstTensor& t) {
  return kernels::BytesFor(t.type, t.numel()).value_or(0);
}

class SoloCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  absl::Status AllReduceSum(kernels::Tensor data) override {
    stats_.Count(CollectiveKind::kAllReduce, Bytes(data));
    return absl::OkStatus();
  }
  absl::Status AllGather(kernels::Tensor out, kernels::ConstTensor in) override {
    stats_.Count(CollectiveKind::kAllGather, Bytes(in));
    return Copy(out, in, "AllGather");
  }
  absl::Status ReduceScatterSum(kernels::Tensor out, kernels::ConstTensor in) override {
    stats_.Count(CollectiveKind::kReduceScatter, Bytes(in));
    return Copy(out, in, "ReduceScatterSum");
  }
  absl::Status AllToAllV(kernels::Tensor out, std::span<const int64_t> recv_counts,
                         kernels::ConstTensor in, std::span<const int64_t> send_counts) override {
    if (recv_counts.size() != 1 || send_counts.size() != 1 || recv_counts[0] != send_counts[0]) {
      return absl::InvalidArgumentError("AllToAllV on one rank: counts must be one equal pair");
    }
    stats_.Count(CollectiveKind::kAllToAllV, Bytes(in));
    return Copy(out, in, "AllToAllV");
  }
  absl::Status Gather(kernels::Tensor out, kernels::ConstTensor in, int root) override {
    if (root != 0) return absl::InvalidArgumentError(absl::StrCat("Gather root ", root));
    stats_.Count(CollectiveKind::kGather, Bytes(in));
    return Copy(out, in, "Gather");
  }
  absl::Status Broadcast(kernels::Tensor data, int root) override {
    if (root != 0) return absl::InvalidArgumentError(absl::StrCat("Broadcast root ", root));
    stats_.Count(CollectiveKind::kBroadcast, Bytes(data));
    return absl::OkStatus();
  }
  absl::Status Barrier() override {
    stats_.Count(CollectiveKind::kBarrier, 0);
    return absl::OkStatus();
  }
  // A ring of one: the send arrives at this rank's own receive.
  absl::StatusOr<std::unique_ptr<PendingSendRecv>> StartSendRecv(kernels::ConstTensor send, int dst,
                                                                 kernels::Tensor recv,
                                                                 int src) override {
    if (dst != 0 || src != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("SendRecv on one rank: peers must be 0, got dst ", dst, " src ", src));
    }
    if (Bytes(send) != Bytes(recv)) {
      return absl::InvalidArgumentError(
          absl::StrCat("SendRecv on one rank: sends ", Bytes(send), " bytes into ", Bytes(recv)));
    }
    stats_.Count(CollectiveKind::kSend, Bytes(send));
    stats_.Count(CollectiveKind::kRecv, Bytes(recv));
    if (recv.data != send.data) std::memmove(recv.data, send.data, Bytes(send));
    return std::make_unique<Done>();
  }
  CollectiveStats stats() const override { return stats_; }

 private:
  struct Done final : PendingSendRecv {
    absl::Status Wait() override { return absl::OkStatus(); }
  };
  static absl::Status Copy(kernels::Tensor out, kernels::ConstTensor in, const char* op) {
    if (out.type != in.type || out.numel() < in.numel()) {
      return absl::InvalidArgumentError(absl::StrCat(op, ": output smaller than input"));
    }
    if (out.data != in.data) std::memmove(out.data, in.data, Bytes(in));
    return absl::OkStatus();
  }

  CollectiveStats stats_;
};

}  // namespace

std::unique_ptr<Communicator> MakeSoloCommunicator() {
  return std::make_unique<SoloCommunicator>();
}

}  // namespace tessera::parallel
