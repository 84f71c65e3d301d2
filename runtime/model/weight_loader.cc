#include "runtime/model/weight_loader.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/dequant.h"

namespace tessera {

const TensorInfo* WeightLoader::Find(absl::string_view name) const {
  if (const gguf::GgufFile* g = source_.gguf()) return g->FindTensor(name);
  if (const HfCheckpoint* h = source_.hf()) return h->FindTensor(name);
  return nullptr;
}

bool WeightLoader::Has(absl::string_view name) const { return Find(name) != nullptr; }

absl::StatusOr<kernels::OwnedTensor> WeightLoader::Load(absl::string_view name,
                                                        const std::vector<int64_t>& shape,
                                                        Split split) {
  const TensorInfo* t = Find(name);
  const std::string where = absl::StrCat(source_.path(), ": tensor ", name);
  if (t == nullptr) return absl::NotFoundError(absl::StrCat(where, ": missing"));
  if (t->shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": shape [", absl::StrJoin(t->shape, ", "), "] does not match the config's [",
        absl::StrJoin(shape, ", "), "]"));
  }
  const int rank = static_cast<int>(shape.size());
  const int dim = split.dim < 0 ? rank + split.dim : split.dim;
  if (dim < 0 || dim >= rank || split.parts < 1 || split.index < 0 || split.index >= split.parts) {
    return absl::InternalError(absl::StrCat(where, ": bad split"));
  }
  if (split.pad) {
    if (dim != 0) return absl::InternalError(absl::StrCat(where, ": padded split of columns"));
    const int64_t part = (shape[0] + split.parts - 1) / split.parts;
    const int64_t begin = std::min<int64_t>(shape[0], split.index * part);
    const int64_t rows = std::min<int64_t>(part, shape[0] - begin);
    std::vector<int64_t> out_shape = shape;
    out_shape[0] = part;
    auto out = kernels::OwnedTensor::Create(t->type, out_shape, where);
    if (!out.ok()) return out.status();
    const int64_t row_bytes = t->bytes / shape[0];
    std::memcpy(out->as<uint8_t>(), t->data.data() + begin * row_bytes, rows * row_bytes);
    std::memset(out->as<uint8_t>() + rows * row_bytes, 0, (part - rows) * row_bytes);
    bytes_loaded_ += out->bytes();
    return out;
  }
  if (shape[dim] % split.parts != 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": dimension ", dim, " (", shape[dim],
                                                   ") does not divide into ", split.parts,
                                                   " parts"));
  }
  const int64_t block = kernels::Info(t->type).block_elems;
  const int64_t cols = shape[rank - 1];
  std::vector<int64_t> out_shape = shape;
  out_shape[dim] /= split.parts;
  if (dim == rank - 1 && out_shape[dim] % block != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": splitting ", cols, " columns into ", split.parts, " parts would cut ",
        kernels::Name(t->type), " blocks of ", block, " (each part must be a multiple of ", block,
        ")"));
  }
  auto out = kernels::OwnedTensor::Create(t->type, out_shape, where);
  if (!out.ok()) return out.status();
  // View the tensor as [outer, shape[dim], inner] and copy the chosen middle range.
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < dim; ++i) outer *= shape[i];
  for (int i = dim + 1; i < rank; ++i) inner *= shape[i];
  const int64_t part = out_shape[dim];
  const int64_t src_stride = *kernels::BytesFor(t->type, shape[dim] * inner);
  const int64_t chunk = *kernels::BytesFor(t->type, part * inner);
  const int64_t skip = *kernels::BytesFor(t->type, split.index * part * inner);
  for (int64_t o = 0; o < outer; ++o) {
    std::memcpy(out->as<uint8_t>() + o * chunk, t->data.data() + o * src_stride + skip, chunk);
  }
  bytes_loaded_ += out->bytes();
  return out;
}

absl::StatusOr<kernels::OwnedTensor> WeightLoader::LoadF32(absl::string_view name,
                                                           const std::vector<int64_t>& shape,
                                                           Split split) {
  auto raw = Load(name, shape, split);
  if (!raw.ok() || raw->view().type == kernels::DType::kF32) return raw;
  const kernels::ConstTensor v = raw->cview();
  std::vector<int64_t> dims(v.shape.begin(), v.shape.begin() + v.rank);
  auto f = kernels::OwnedTensor::Create(kernels::DType::kF32, dims,
                                       absl::StrCat(source_.path(), ": tensor ", name, " as f32"));
  if (!f.ok()) return f.status();
  const int64_t cols = v.cols();
  const int64_t row_bytes = *kernels::BytesFor(v.type, cols);
  for (int64_t r = 0; r < v.rows(); ++r) {
    kernels::DequantizeRow(f->as<float>() + r * cols,
                           static_cast<const uint8_t*>(v.data) + r * row_bytes, v.type, cols);
  }
  bytes_loaded_ += f->bytes() - raw->bytes();
  return f;
}

}  // namespace tessera
