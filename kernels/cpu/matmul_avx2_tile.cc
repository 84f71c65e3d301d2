// The f32 side of MatMul's prefill path: a register-blocked micro-kernel over a tile of w
// rows already dequantized to f32 (4 rows of w × 3 tokens, 12 ymm accumulators), and the
// per-32-element sums of x used by the fused decode kernels. AVX2 code carries the target
// attribute; matmul.cc calls in only after simd::HasAvx2().
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/matmul_internal.h"

namespace tessera::kernels::internal {
namespace {

// R rows of w × TT tokens, R*TT accumulators; every output is summed in the same order
// (8-wide lanes over k, then HSum, then the scalar tail) whatever R and TT are, so the
// result does not depend on where tile edges fall.
template <int R, int TT>
TESSERA_AVX2 void Tile(float* out, int64_t os, const float* w, int64_t ws, const float* x,
                       int64_t xs, int64_t k) {
  __m256 acc[R][TT];
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < TT; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 xv[TT];
    for (int t = 0; t < TT; ++t) xv[t] = _mm256_loadu_ps(x + t * xs + i);
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_loadu_ps(w + r * ws + i);
      for (int t = 0; t < TT; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < TT; ++t) {
      float s = HSum(acc[r][t]);
      for (int64_t j = i; j < k; ++j) s += w[r * ws + j] * x[t * xs + j];
      out[t * os + r] = s;
    }
  }
}

constexpr int kTileRows = 4, kTileTokens = 3;
using TileFn = void (*)(float*, int64_t, const float*, int64_t, const float*, int64_t, int64_t);
template <int... I>
constexpr std::array<TileFn, sizeof...(I)> MakeTiles(std::integer_sequence<int, I...>) {
  return {Tile<I / kTileTokens + 1, I % kTileTokens + 1>...};
}
// kTiles[(rows - 1) * kTileTokens + tokens - 1] for the edges of the tile.
constexpr auto kTiles = MakeTiles(std::make_integer_sequence<int, kTileRows * kTileTokens>{});

}  // namespace

void Avx2DotTile(float* out, int64_t os, const float* w, int64_t ws, int64_t rows, const float* x,
                 int64_t xs, int64_t tokens, int64_t k) {
  // Rows outer: 4 rows of w stay in L1 while the tokens stream past.
  for (int64_t r = 0; r < rows; r += kTileRows) {
    const int64_t nr = std::min<int64_t>(kTileRows, rows - r);
    for (int64_t t = 0; t < tokens; t += kTileTokens) {
      const int64_t nt = std::min<int64_t>(kTileTokens, tokens - t);
      kTiles[(nr - 1) * kTileTokens + nt - 1](out + t * os + r, os, w + r * ws, ws, x + t * xs, xs,
                                              k);
    }
  }
}

void XSums32(float* out, const float* x, int64_t t, int64_t k) {
  for (int64_t i = 0; i < t * k / 32; ++i) {
    float s = 0;
    for (int j = 0; j < 32; ++j) s += x[32 * i + j];
    out[i] = s;
  }
}

}  // namespace tessera::kernels::internal
