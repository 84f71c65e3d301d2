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
  absl::Status AllReduceSum(kernels::Tensor) override { return absl::OkStatus(); }
  absl::Status AllGather(kernels::Tensor out, kernels::ConstTensor in) override {
    return Copy(out, in, "AllGather");
  }
  absl::Status ReduceScatterSum(kernels::Tensor out, kernels::ConstTensor in) override {
    return Copy(out, in, "ReduceScatterSum");
  }
  absl::Status AllToAllV(kernels::Tensor out, std::span<const int64_t> recv_counts,
                         kernels::ConstTensor in, std::span<const int64_t> send_counts) override {
    if (recv_counts.size() != 1 || send_counts.size() != 1 || recv_counts[0] != send_counts[0]) {
      return absl::InvalidArgumentError("AllToAllV on one rank: counts must be one equal pair");
    }
    return Copy(out, in, "AllToAllV");
  }
  absl::Status Broadcast(kernels::Tensor, int root) override {
    if (root != 0) return absl::InvalidArgumentError(absl::StrCat("Broadcast root ", root));
    return absl::OkStatus();
  }
  absl::Status Barrier() override { return absl::OkStatus(); }

 private:
  static absl::Status Copy(kernels::Tensor out, kernels::ConstTensor in, const char* op) {
    if (out.type != in.type || out.numel() < in.numel()) {
      return absl::InvalidArgumentError(absl::StrCat(op, ": output smaller than input"));
    }
    if (out.data != in.data) std::memmove(out.data, in.data, Bytes(in));
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<Communicator> MakeSoloCommunicator() { return std::make_unique<SoloCommunicator>(); }

}  // namespace tessera::parallel
