// Reader for GGUF v2/v3 model files (llama.cpp's format).
//
// Parse() checks every header field before use: string and array lengths and counts
// against the bytes left, tensor offsets and sizes with overflow-safe arithmetic against
// the file length, shapes against the tensor type's block size, duplicate keys and tensor
// names. A malformed or truncated file yields an error naming the file, the key or tensor
// and the problem; never a crash. Decoded metadata and tensor infos may take at most 16x
// the file's size plus 64 MiB of memory (RESOURCE_EXHAUSTED naming the key, the element
// count and the limit beyond that), so a small file cannot claim gigabytes.
//
// Zero-copy: string values and tensor data are views into the mapped bytes, which the
// GgufFile keeps alive (Open) or borrows (Parse). Immutable after construction, so
// thread-safe for concurrent reads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/dtype.h"
#include "runtime/io/mapped_file.h"
#include "runtime/model/tensor_info.h"

namespace tessera::gguf {

// GGUF metadata value types, numbered as in the file.
enum class ValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

absl::string_view ValueTypeName(ValueType t);

// One metadata value: a scalar, a string, or an array of values (arrays of arrays allowed,
// as the format allows, with nesting capped).
class Value {
 public:
  ValueType type() const { return type_; }
  // For arrays, the type of the elements.
  ValueType elem_type() const { return elem_type_; }
  bool is_array() const { return type_ == ValueType::kArray; }

  // Integer types (not bool, not floats); nullopt otherwise or if a u64 exceeds int64.
  std::optional<int64_t> AsInt() const;
  // Any numeric type (integers and floats).
  std::optional<double> AsFloat() const;
  std::optional<bool> AsBool() const;
  std::optional<absl::string_view> AsString() const;
  // Array elements; empty for scalars.
  const std::vector<Value>& items() const { return items_; }

  // A short human-readable rendering (arrays abbreviated), for `tessera inspect`.
  std::string ToString(size_t max_items = 8) const;

 private:
  friend class Parser;
  ValueType type_ = ValueType::kU8;
  ValueType elem_type_ = ValueType::kU8;
  union {
    uint64_t u;
    int64_t i;
    double f;
  } num_{0};
  absl::string_view str_;
  std::vector<Value> items_;
};

using ::tessera::TensorInfo;

class GgufFile {
 public:
  // Maps and parses `path`.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses borrowed bytes; `name` is used in error messages. The bytes must outlive the
  // result. This is the entry point a fuzzer drives.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Parse(std::span<const uint8_t> bytes,
                                                         std::string name);

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return file_size_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return metadata_; }
  const Value* Find(absl::string_view key) const;

  // Typed lookups with errors that name the file and key ("x.gguf: metadata key
  // llama.block_count: missing" / "...: expected an integer, found string").
  absl::StatusOr<int64_t> GetInt(absl::string_view key) const;
  absl::StatusOr<double> GetFloat(absl::string_view key) const;
  absl::StatusOr<absl::string_view> GetString(absl::string_view key) const;
  absl::StatusOr<bool> GetBool(absl::string_view key) const;
  // The array at `key`, checking its element type.
  absl::StatusOr<const std::vector<Value>*> GetArray(absl::string_view key,
                                                     ValueType elem_type) const;

  // Tensors in file order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(absl::string_view name) const;

 private:
  friend class Parser;
  GgufFile() = default;

  // Immutable after construction.
  std::unique_ptr<MappedFile> mapping_;  // null when parsing borrowed bytes
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t file_size_ = 0;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::map<std::string, size_t, std::less<>> metadata_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace tessera::gguf
