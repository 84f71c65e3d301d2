// A bounds-checked little-endian cursor over untrusted bytes.
//
// Every read checks the remaining length first and fails with a Status that says what was
// being read, at which offset, and how many bytes were left. Never reads out of bounds,
// never asserts. Not thread-safe (it is a cursor); the bytes are borrowed.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include "absl/strings/string_view.h"
#include <type_traits>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace tessera {

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  uint64_t offset() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  // Reads one little-endian integer or float of type T; `what` names it in errors.
  template <typename T>
  absl::StatusOr<T> Read(absl::string_view what) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (remaining() < sizeof(T)) return Truncated(what, sizeof(T));
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));  // host is little-endian (x86, arm64)
    pos_ += sizeof(T);
    return v;
  }

  // Reads `n` raw bytes as a view into the underlying buffer.
  absl::StatusOr<absl::string_view> ReadBytes(uint64_t n, absl::string_view what) {
    if (remaining() < n) return Truncated(what, n);
    absl::string_view v(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return v;
  }

  absl::Status Skip(uint64_t n, absl::string_view what) {
    if (remaining() < n) return Truncated(what, n);
    pos_ += n;
    return absl::OkStatus();
  }

  absl::Status SeekTo(uint64_t offset, absl::string_view what) {
    if (offset > bytes_.size()) return Truncated(what, offset - pos_);
    pos_ = offset;
    return absl::OkStatus();
  }

 private:
  absl::Status Truncated(absl::string_view what, uint64_t need) const {
    return absl::DataLossError(absl::StrCat("truncated reading ", what, " at offset ", pos_,
                                            ": need ", need, " bytes, ", remaining(), " left"));
  }

  std::span<const uint8_t> bytes_;
  uint64_t pos_ = 0;
};

}  // namespace tessera
