#include "kernels/embedding.h"

#include <cstring>
#include <vector>

#include "kernels/cpu/check.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/dequant.h"

namespace tessera::kernels {
namespace {

int64_t CheckShapes(const Tensor& out, const ConstTensor& table, const int32_t* ids, int64_t T) {
  TESSERA_KCHECK(out.type == DType::kF32, "EmbeddingLookup: out must be f32");
  TESSERA_KCHECK(out.device == Device::kCpu && table.device == Device::kCpu,
                 "EmbeddingLookup: CPU kernel handed a non-CPU tensor");
  TESSERA_KCHECK(table.rank == 2, "EmbeddingLookup: table must be [V, H]");
  TESSERA_KCHECK(out.rows() == T && out.cols() == table.dim(1),
                 "EmbeddingLookup: out must be [T, H]");
  const auto bytes = BytesFor(table.type, table.dim(1));
  TESSERA_KCHECK(bytes.has_value(), "EmbeddingLookup: H is not a whole number of blocks");
  for (int64_t t = 0; t < T; ++t) {
    TESSERA_KCHECK(ids[t] >= 0 && ids[t] < table.dim(0),
                   "EmbeddingLookup: token id out of range (the caller must validate ids)");
  }
  return *bytes;
}

}  // namespace

void EmbeddingLookup(Tensor out, ConstTensor table, const int32_t* ids, int64_t T) {
  const int64_t row_bytes = CheckShapes(out, table, ids, T);
  const int64_t h = table.dim(1);
  ParallelFor(T, 4, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      DequantizeRow(out.as<float>() + t * h, table.as<const uint8_t>() + ids[t] * row_bytes,
                    table.type, h);
    }
  });
}

void EmbeddingLookupReference(Tensor out, ConstTensor table, const int32_t* ids, int64_t T) {
  CheckShapes(out, table, ids, T);
  const int64_t h = table.dim(1);
  std::vector<float> all(table.dim(0) * h);
  DequantizeRow(all.data(), table.data, table.type, table.numel());
  for (int64_t t = 0; t < T; ++t) {
    std::memcpy(out.as<float>() + t * h, all.data() + ids[t] * h, h * sizeof(float));
  }
}

}  // namespace tessera::kernels
