#include "parallel/linear.h"

#include "kernels/matmul.h"

namespace tessera::parallel {

void AddBias(kernels::Tensor x, kernels::ConstTensor bias) {
  const int64_t n = x.cols();
  const float* b = bias.as<const float>();
  float* y = x.as<float>();
  for (int64_t r = 0; r < x.rows(); ++r) {
    for (int64_t i = 0; i < n; ++i) y[r * n + i] += b[i];
  }
}

ColumnParallelLinear::ColumnParallelLinear(kernels::OwnedTensor weight,
                                           std::optional<kernels::OwnedTensor> bias)
    : weight_(std::move(weight)), bias_(std::move(bias)) {}

void ColumnParallelLinear::Forward(kernels::Tensor out, kernels::ConstTensor x) const {
  kernels::MatMul(out, x, weight_.cview());
  if (bias_) AddBias(out, bias_->cview());
}

int64_t ColumnParallelLinear::bytes() const {
  return weight_.bytes() + (bias_ ? bias_->bytes() : 0);
}

RowParallelLinear::RowParallelLinear(kernels::OwnedTensor weight,
                                     std::optional<kernels::OwnedTensor> bias, Communicator* comm)
    : weight_(std::move(weight)), bias_(std::move(bias)), comm_(comm) {}

absl::Status RowParallelLinear::Forward(kernels::Tensor out, kernels::ConstTensor x) const {
  kernels::MatMul(out, x, weight_.cview());
  if (absl::Status s = comm_->AllReduceSum(out); !s.ok()) return s;
  if (bias_) AddBias(out, bias_->cview());
  return absl::OkStatus();
}

int64_t RowParallelLinear::bytes() const { return weight_.bytes() + (bias_ ? bias_->bytes() : 0); }

}  // namespace tessera::parallel
