// Copies (a shard of) a stored tensor out of a mapped model file into memory a layer owns.
//
// A rank reads only its own slice: the rows (dim 0) or the columns (last dim) given by a
// Split, straight from the mmap. Quantized tensors split only on block boundaries; a split
// that would cut a block is refused with a message naming the tensor and the block size.
// Stateless apart from the byte counter; not thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/buffer.h"
#include "runtime/model/model_source.h"

namespace tessera {

// Take part `index` of `parts` equal parts along `dim` (0 = outermost; -1 = last).
struct Split {
  int dim = 0;
  int index = 0;
  int parts = 1;
  bool pad = false;  // rows only: see PaddedRows
  static Split None() { return {}; }
  static Split Rows(int index, int parts) { return {0, index, parts}; }
  static Split Cols(int index, int parts) { return {-1, index, parts}; }
  // Rows cut into parts of ceil(rows / parts), the last ones short and zero-filled to that
  // size (vocab-parallel tables whose vocabulary tp does not divide).
  static Split PaddedRows(int index, int parts) { return {0, index, parts, true}; }
};

class WeightLoader {
 public:
  explicit WeightLoader(const ModelSource& source) : source_(source) {}

  // The slice of tensor `name`, whose full shape must equal `shape` (outermost first).
  absl::StatusOr<kernels::OwnedTensor> Load(absl::string_view name,
                                            const std::vector<int64_t>& shape, Split split);
  // The same, converted to f32 (norm weights and biases, which kernels take as f32).
  absl::StatusOr<kernels::OwnedTensor> LoadF32(absl::string_view name,
                                               const std::vector<int64_t>& shape, Split split);
  bool Has(absl::string_view name) const;
  // The tensor's name, shape and type, or null when the file has no such tensor.
  const TensorInfo* Info(absl::string_view name) const { return Find(name); }

  // Bytes of weights this loader has copied out so far: the rank's resident weights.
  int64_t bytes_loaded() const { return bytes_loaded_; }

 private:
  const TensorInfo* Find(absl::string_view name) const;

  const ModelSource& source_;
  int64_t bytes_loaded_ = 0;
};

}  // namespace tessera
