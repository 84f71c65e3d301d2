// Owning host memory for tensors: a move-only, 64-byte aligned byte buffer, and a tensor
// that owns its bytes (what a layer holds for its weight shard).
//
// Sizes that come from outside (a model file, a config, a request) go through the
// factories, HostBuffer::Allocate and OwnedTensor::Create: they return RESOURCE_EXHAUSTED,
// naming what was being allocated and how many bytes, when the request exceeds the memory
// available or the allocation fails, and INVALID_ARGUMENT for a shape no storage fits. The
// constructors are for sizes Tensor code chose itself: a bad shape there is our bug.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <new>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/tensor.h"

namespace tessera::kernels {

// The product of non-negative `factors`, or nullopt if it overflows int64 (or a factor is
// negative). The one place sizes that come from outside are multiplied.
std::optional<int64_t> CheckedProduct(std::initializer_list<int64_t> factors);
// The sum of `terms`, or nullopt if one is nullopt or the sum overflows int64.
std::optional<int64_t> CheckedSum(std::initializer_list<std::optional<int64_t>> terms);

// Bytes this process can still allocate without swapping: MemAvailable from /proc/meminfo,
// else the free physical pages; INT64_MAX if neither can be read.
int64_t AvailableMemoryBytes();
// OK if `bytes` (nullopt: a size that overflowed) for `what` fit in AvailableMemoryBytes();
// else RESOURCE_EXHAUSTED naming `what`, the bytes and the memory available.
absl::Status CheckAvailable(std::optional<int64_t> bytes, absl::string_view what);

class HostBuffer {
 public:
  HostBuffer() = default;
  // `bytes` for `what` ("the KV cache", "tensor blk.0.attn_q.weight"), checked against
  // AvailableMemoryBytes() first. INVALID_ARGUMENT if `bytes` is negative.
  static absl::StatusOr<HostBuffer> Allocate(int64_t bytes, absl::string_view what);
  // Throws std::bad_alloc if the allocation fails.
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
  // Uninitialised storage for `dims` (outermost first) elements of `type`, for `what` in
  // errors. INVALID_ARGUMENT if there are more than kMaxRank dims, a dim is negative, the
  // innermost is not a whole number of `type`'s blocks, or the byte count overflows;
  // RESOURCE_EXHAUSTED as HostBuffer::Allocate.
  static absl::StatusOr<OwnedTensor> Create(DType type, const std::vector<int64_t>& dims,
                                            absl::string_view what);
  // The same for shapes Tessera code chose: a shape Create refuses is a CHECK failure; a
  // failed allocation throws std::bad_alloc.
  OwnedTensor(DType type, std::initializer_list<int64_t> dims)
      : OwnedTensor(type, std::vector<int64_t>(dims)) {}
  OwnedTensor(DType type, const std::vector<int64_t>& dims);

  Tensor view() const { return view_; }
  ConstTensor cview() const { return view_; }
  int64_t bytes() const { return buffer_.bytes(); }
  template <typename T>
  T* as() const {
    return reinterpret_cast<T*>(buffer_.data());
  }

 private:
  // The view of `dims` and its byte count, or why no storage fits that shape.
  static absl::StatusOr<std::pair<Tensor, int64_t>> Plan(DType type,
                                                         const std::vector<int64_t>& dims);
  HostBuffer buffer_;
  Tensor view_;
};

}  // namespace tessera::kernels
