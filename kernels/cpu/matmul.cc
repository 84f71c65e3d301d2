#include "kernels/matmul.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/check.h"
#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/dequant.h"

namespace tessera::kernels {
namespace {

struct Dims {
  int64_t t, k, n, row_bytes;
};

Dims CheckShapes(const Tensor& out, const ConstTensor& x, const ConstTensor& w) {
  TESSERA_KCHECK(out.device == Device::kCpu && x.device == Device::kCpu &&
                     w.device == Device::kCpu,
                 "MatMul: CPU kernel handed a non-CPU tensor");
  TESSERA_KCHECK(out.type == DType::kF32 && x.type == DType::kF32, "MatMul: out and x must be f32");
  TESSERA_KCHECK(w.rank == 2, "MatMul: w must be [N, K]");
  const Dims d{x.rows(), x.cols(), w.dim(0), 0};
  TESSERA_KCHECK(w.dim(1) == d.k, "MatMul: x is [T, K] but w is not [N, K]");
  TESSERA_KCHECK(out.rows() == d.t && out.cols() == d.n, "MatMul: out must be [T, N]");
  const auto bytes = BytesFor(w.type, d.k);
  TESSERA_KCHECK(bytes.has_value(), "MatMul: K is not a whole number of w's blocks");
  TESSERA_KCHECK(out.data != x.data && out.data != w.data, "MatMul: out aliases an input");
  return {d.t, d.k, d.n, *bytes};
}

// Rows of w per task: a tile of about 16 KiB stays in L1 while every token passes over it.
int64_t RowTile(const Dims& d) {
  const int64_t by_cache = std::max<int64_t>(1, 16384 / std::max<int64_t>(d.row_bytes, 1));
  const int64_t by_balance = std::max<int64_t>(1, d.n / (4 * NumThreads()));
  return std::min(by_cache, by_balance);
}

// Without AVX2: dequantize a tile of w rows, f32 dots with every token.
void MatMulPortable(const Dims& d, float* out, const float* x, const uint8_t* w, DType type) {
  ParallelFor(d.n, RowTile(d), [&](int64_t n0, int64_t n1) {
    std::vector<float> tile((n1 - n0) * d.k);
    for (int64_t n = n0; n < n1; ++n) {
      DequantizeRow(tile.data() + (n - n0) * d.k, w + n * d.row_bytes, type, d.k);
    }
    for (int64_t t = 0; t < d.t; ++t) {
      for (int64_t n = n0; n < n1; ++n) {
        out[t * d.n + n] = simd::Dot(tile.data() + (n - n0) * d.k, x + t * d.k, d.k);
      }
    }
  });
}

}  // namespace

void MatMul(Tensor out, ConstTensor x, ConstTensor w) {
  const Dims d = CheckShapes(out, x, w);
  if (d.t == 0 || d.n == 0) return;
  auto* y = out.as<float>();
  const auto* wb = w.as<const uint8_t>();
  if (!simd::HasAvx2()) return MatMulPortable(d, y, x.as<const float>(), wb, w.type);

  // Activations as the kernel wants them: f32 rows, or BlockQ8 rows for quantized w.
  std::vector<internal::BlockQ8> xq;
  const uint8_t* act = x.as<const uint8_t>();
  int64_t act_stride = d.k * static_cast<int64_t>(sizeof(float));
  if (Info(w.type).quantized) {
    const int64_t blocks = d.k / 32;
    xq.resize(d.t * blocks);
    ParallelFor(d.t, 16, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        internal::QuantizeRowQ8(xq.data() + t * blocks, x.as<const float>() + t * d.k, d.k);
      }
    });
    act = reinterpret_cast<const uint8_t*>(xq.data());
    act_stride = blocks * static_cast<int64_t>(sizeof(internal::BlockQ8));
  }

  const internal::RowDotFn dot = internal::Avx2RowDot(w.type);
  ParallelFor(d.n, RowTile(d), [&](int64_t n0, int64_t n1) {
    for (int64_t t0 = 0; t0 < d.t; t0 += 4) {
      const int nt = static_cast<int>(std::min<int64_t>(4, d.t - t0));
      for (int64_t n = n0; n < n1; ++n) {
        dot(y + t0 * d.n + n, d.n, wb + n * d.row_bytes, act + t0 * act_stride, act_stride, d.k,
            nt);
      }
    }
  });
}

void MatMulReference(Tensor out, ConstTensor x, ConstTensor w) {
  const Dims d = CheckShapes(out, x, w);
  std::vector<float> row(d.k);
  for (int64_t n = 0; n < d.n; ++n) {
    DequantizeRow(row.data(), w.as<const uint8_t>() + n * d.row_bytes, w.type, d.k);
    for (int64_t t = 0; t < d.t; ++t) {
      const float* xt = x.as<const float>() + t * d.k;
      float s = 0;
      for (int64_t i = 0; i < d.k; ++i) s += row[i] * xt[i];
      out.as<float>()[t * d.n + n] = s;
    }
  }
}

}  // namespace tessera::kernels
