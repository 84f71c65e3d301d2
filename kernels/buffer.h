// Owning host memory for tensors: a move-only, 64-byte aligned byte buffer, and a tensor
// that owns its bytes (what a layer holds for its weight shard).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <new>
#include <vector>

#include "kernels/tensor.h"

namespace tessera::kernels {

class HostBuffer {
 public:
  HostBuffer() = default;
  explicit HostBuffer(int64_t bytes)
      : data_(static_cast<uint8_t*>(std::aligned_alloc(64, RoundUp(bytes)))), bytes_(bytes) {
    if (data_ == nullptr && bytes > 0) throw std::bad_alloc();
  }
  HostBuffer(HostBuffer&& o) noexcept : data_(o.data_), bytes_(o.bytes_) {
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  HostBuffer& operator=(HostBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  ~HostBuffer() { std::free(data_); }

  uint8_t* data() const { return data_; }
  int64_t bytes() const { return bytes_; }

 private:
  static size_t RoundUp(int64_t b) { return static_cast<size_t>((b + 63) / 64 * 64); }
  uint8_t* data_ = nullptr;
  int64_t bytes_ = 0;
};

// A tensor with its own storage. view() stays valid while the OwnedTensor lives (moving it
// keeps the storage, so views stay valid across moves too).
class OwnedTensor {
 public:
  OwnedTensor() = default;
  // Uninitialised storage for `dims` elements of `type` (dims must be block-aligned).
  OwnedTensor(DType type, std::initializer_list<int64_t> dims)
      : OwnedTensor(type, std::vector<int64_t>(dims)) {}
  OwnedTensor(DType type, const std::vector<int64_t>& dims) {
    view_.type = type;
    view_.rank = static_cast<int>(dims.size());
    for (int i = 0; i < view_.rank; ++i) view_.shape[i] = dims[i];
    buffer_ = HostBuffer(BytesFor(type, view_.numel()).value_or(0));
    view_.data = buffer_.data();
  }

  Tensor view() const { return view_; }
  ConstTensor cview() const { return view_; }
  int64_t bytes() const { return buffer_.bytes(); }
  template <typename T>
  T* as() const {
    return reinterpret_cast<T*>(buffer_.data());
  }

 private:
  HostBuffer buffer_;
  Tensor view_;
};

}  // namespace tessera::kernels
