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
  TESSERA_KCHECK(out.device == Device::kCpu && x.device == Device::kCpu && w.device == Device::kCpu,
                 "MatMul: CPU kernel handed a non-CPU tensor");
  TESSERA_KCHECK(out.type == DType::kF32 && x.type == DType::kF32, "MatMul: out and x must be f32");
  TESSERA_KCHECK(w.rank == 2, "MatMul: w must be [N, K]");
  TESSERA_KCHECK(IsWeightType(w.type), "MatMul: w has a payload type, not a weight type");
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

// Tokens up to which MatMul decodes each weight block in registers and FMAs it straight into
// per-token accumulators; above it, a tile of w rows is dequantized to f32 once and the f32
// micro-kernel sweeps every token over it. Measured (Q4_1/Q8_0/Q6_K, K = 1536, N = 576):
// the two are about even at T = 5, and the tile path is ~25% faster per token at T = 8-16.
constexpr int64_t kFusedMaxTokens = 4;

void MatMulFused(const Dims& d, float* out, const float* x, const uint8_t* w, DType type) {
  std::vector<float> xsum;
  if (Info(type).quantized) {
    xsum.resize(d.t * d.k / 32);
    internal::XSums32(xsum.data(), x, d.t, d.k);
  }
  const int64_t sums = d.k / 32;
  const internal::RowsDotF32Fn dot = internal::Avx2RowsDotF32Act(type);
  ParallelFor(d.n, RowTile(d), [&](int64_t n0, int64_t n1) {
    for (int64_t t0 = 0; t0 < d.t; t0 += 4) {
      const int nt = static_cast<int>(std::min<int64_t>(4, d.t - t0));
      const float* xs = xsum.empty() ? nullptr : xsum.data() + t0 * sums;
      dot(out + t0 * d.n + n0, d.n, w + n0 * d.row_bytes, d.row_bytes, n1 - n0, x + t0 * d.k, xs,
          d.k, d.k, nt);
    }
  });
}

void MatMulTiled(const Dims& d, float* out, const float* x, const uint8_t* w, DType type) {
  // A task's f32 tile of w is about 64 KiB (L2; the micro-kernel's 4 rows sit in L1), and
  // tokens go in blocks of about 128 KiB of x so they too stay in L2 across the tile's rows.
  const int64_t row_f32 = d.k * static_cast<int64_t>(sizeof(float));
  const int64_t by_cache = std::max<int64_t>(4, (65536 / row_f32) / 4 * 4);
  const int64_t by_balance = std::max<int64_t>(4, d.n / (4 * NumThreads()) / 4 * 4);
  const int64_t token_block = std::max<int64_t>(3, (131072 / row_f32) / 3 * 3);
  const internal::DequantizeRowFn dequant = internal::Avx2DequantizeRow(type);
  ParallelFor(d.n, std::min(by_cache, by_balance), [&](int64_t n0, int64_t n1) {
    thread_local std::vector<float> buffer;  // reused across calls: no allocation per tile
    const float* tile = reinterpret_cast<const float*>(w + n0 * d.row_bytes);
    if (type != DType::kF32) {
      buffer.resize((n1 - n0) * d.k);
      for (int64_t n = n0; n < n1; ++n) {
        dequant(buffer.data() + (n - n0) * d.k, w + n * d.row_bytes, d.k);
      }
      tile = buffer.data();
    }
    for (int64_t t0 = 0; t0 < d.t; t0 += token_block) {
      internal::Avx2DotTile(out + t0 * d.n + n0, d.n, tile, d.k, n1 - n0, x + t0 * d.k, d.k,
                            std::min(token_block, d.t - t0), d.k);
    }
  });
}

}  // namespace

void MatMul(Tensor out, ConstTensor x, ConstTensor w) {
  const Dims d = CheckShapes(out, x, w);
  if (d.t == 0 || d.n == 0) return;
  auto* y = out.as<float>();
  const auto* xf = x.as<const float>();
  const auto* wb = w.as<const uint8_t>();
  if (!simd::HasAvx2()) return MatMulPortable(d, y, xf, wb, w.type);
  if (d.t <= kFusedMaxTokens) return MatMulFused(d, y, xf, wb, w.type);
  MatMulTiled(d, y, xf, wb, w.type);
}

void MatMulQ8Activations(Tensor out, ConstTensor x, ConstTensor w) {
  if (!Info(w.type).quantized || !simd::HasAvx2() || internal::Avx2RowDotQ8Act(w.type) == nullptr) {
    return MatMul(out, x, w);
  }
  const Dims d = CheckShapes(out, x, w);
  if (d.t == 0 || d.n == 0) return;
  auto* y = out.as<float>();
  const auto* wb = w.as<const uint8_t>();

  const int64_t blocks = d.k / 32;
  std::vector<internal::BlockQ8> xq(d.t * blocks);
  ParallelFor(d.t, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      internal::QuantizeRowQ8(xq.data() + t * blocks, x.as<const float>() + t * d.k, d.k);
    }
  });
  const auto* act = reinterpret_cast<const uint8_t*>(xq.data());
  const int64_t act_stride = blocks * static_cast<int64_t>(sizeof(internal::BlockQ8));

  const internal::RowDotFn dot = internal::Avx2RowDotQ8Act(w.type);
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
