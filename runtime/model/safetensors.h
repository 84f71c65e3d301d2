// Reader for Hugging Face safetensors files.
//
// Layout: u64 little-endian header length N, N bytes of JSON mapping each tensor name to
// {dtype, shape, data_offsets: [begin, end]} (offsets relative to the byte after the
// header), an optional "__metadata__" map of strings, then the data. Parse() checks the
// header length against the file, rejects duplicate names, unsupported dtypes, shapes whose
// byte size differs from the offsets, offsets past the end and overlapping tensors, and
// names the file and the tensor in every error. Zero-copy, immutable, thread-safe reads.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/io/mapped_file.h"
#include "runtime/model/tensor_info.h"

namespace tessera {

class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // Parses borrowed bytes (which must outlive the result); `name` appears in errors.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Parse(std::span<const uint8_t> bytes,
                                                                std::string name);

  const std::string& name() const { return name_; }
  // Tensors in order of their data offsets.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(absl::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  absl::Status ParseHeader(std::span<const uint8_t> bytes);

  // Immutable after construction.
  std::unique_ptr<MappedFile> mapping_;
  std::string name_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace tessera
