// Non-owning views of dense, row-major tensors, as kernels take them.
//
// Dims: shape[0] is the outermost dimension, shape[rank-1] the innermost (contiguous) one,
// as PyTorch prints shapes. A view never owns or frees its data; whoever made the buffer
// keeps it alive for as long as the view is used. Kernels dispatch on `device`. At most
// kMaxRank dims: shapes from files are checked (OwnedTensor::Create) before a view is made.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>

#include "kernels/cpu/check.h"
#include "kernels/dtype.h"

namespace tessera::kernels {

enum class Device : uint8_t { kCpu, kCuda };

constexpr int kMaxRank = 4;

template <typename Ptr>
struct TensorView {
  Ptr data = nullptr;
  DType type = DType::kF32;
  Device device = Device::kCpu;
  int rank = 0;
  std::array<int64_t, kMaxRank> shape{};

  TensorView() = default;
  TensorView(Ptr d, DType t, std::initializer_list<int64_t> dims, Device dev = Device::kCpu)
      : data(d), type(t), device(dev), rank(static_cast<int>(dims.size())) {
    TESSERA_KCHECK(dims.size() <= kMaxRank, "TensorView: more than kMaxRank dims");
    int i = 0;
    for (int64_t x : dims) shape[i++] = x;
  }
  // A mutable view converts to a read-only one.
  template <typename Other>
  TensorView(const TensorView<Other>& o)  // NOLINT(runtime/explicit)
      : data(o.data), type(o.type), device(o.device), rank(o.rank), shape(o.shape) {}

  int64_t dim(int i) const { return shape[i < 0 ? rank + i : i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= shape[i];
    return n;
  }
  int64_t cols() const { return rank == 0 ? 1 : shape[rank - 1]; }  // innermost
  int64_t rows() const { return cols() == 0 ? 0 : numel() / cols(); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

using Tensor = TensorView<void*>;
using ConstTensor = TensorView<const void*>;

}  // namespace tessera::kernels
