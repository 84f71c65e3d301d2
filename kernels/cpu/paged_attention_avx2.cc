// PagedAttention's AVX2 kernel for one split (paged_attention_internal.h): scores four keys
// at a time (one horizontal reduction per four keys) and sums values with the lane's output
// held in registers across a block; the block walk, widening and online softmax are the
// portable kernel's (paged_attention.cc).
#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/paged_attention_internal.h"

namespace tessera::kernels::internal {
namespace {

// out[0..4) = scale * (q . k_i), i < 4; every key reduced by the same tree.
TESSERA_AVX2_INLINE void Score4(float* out, const float* q, const float* k0, const float* k1,
                                const float* k2, const float* k3, int64_t d, __m128 scale) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  for (int64_t c = 0; c < d; c += 8) {
    const __m256 qv = _mm256_loadu_ps(q + c);
    a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + c), a0);
    a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + c), a1);
    a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + c), a2);
    a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + c), a3);
  }
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  _mm_storeu_ps(out, _mm_mul_ps(s, scale));
}

// acc[0, 8 * NV) += sum_p w[p] * v[p * stride + (0, 8 * NV)], p < n, in order of p.
template <int NV>
TESSERA_AVX2_INLINE void ValueSum(float* acc, const float* v, int64_t stride, const float* w,
                                  int64_t n) {
  __m256 a[NV];
  for (int i = 0; i < NV; ++i) a[i] = _mm256_loadu_ps(acc + 8 * i);
  for (int64_t p = 0; p < n; ++p) {
    const __m256 wp = _mm256_broadcast_ss(w + p);
    const float* vp = v + p * stride;
    for (int i = 0; i < NV; ++i) a[i] = _mm256_fmadd_ps(wp, _mm256_loadu_ps(vp + 8 * i), a[i]);
  }
  for (int i = 0; i < NV; ++i) _mm256_storeu_ps(acc + 8 * i, a[i]);
}

TESSERA_AVX2 void ValueSumAll(float* acc, const float* v, int64_t stride, const float* w,
                              int64_t n, int64_t d) {
  for (int64_t c = 0; c < d; c += 64) {
    float* a = acc + c;
    const float* vc = v + c;
    switch (std::min<int64_t>(8, (d - c) / 8)) {
      case 8: ValueSum<8>(a, vc, stride, w, n); break;
      case 7: ValueSum<7>(a, vc, stride, w, n); break;
      case 6: ValueSum<6>(a, vc, stride, w, n); break;
      case 5: ValueSum<5>(a, vc, stride, w, n); break;
      case 4: ValueSum<4>(a, vc, stride, w, n); break;
      case 3: ValueSum<3>(a, vc, stride, w, n); break;
      case 2: ValueSum<2>(a, vc, stride, w, n); break;
      default: ValueSum<1>(a, vc, stride, w, n); break;
    }
  }
}

}  // namespace

TESSERA_AVX2 void AttendSplitAvx2(const SplitTask& t, Partial out, SplitScratch scratch) {
  const int64_t d = t.d, stride = t.cache->kv_heads * d, bs = t.cache->block_size;
  ClearPartial(out, t.rows * t.heads, d);
  int64_t lo_all, hi_all;
  TaskKeys(t, &lo_all, &hi_all);
  const __m128 scale = _mm_set1_ps(t.scale);
  float* sc = scratch.scores;
  for (int64_t b = lo_all / bs; b * bs < hi_all; ++b) {
    const int64_t kb0 = std::max(b * bs, lo_all), kb1 = std::min((b + 1) * bs, hi_all);
    const float *kr, *vr;
    BlockRows(t, b, kb0, kb1, scratch, &kr, &vr);
    for (int64_t r = 0; r < t.rows; ++r) {
      int64_t lo, hi;
      RowKeys(t, r, kb0, kb1, &lo, &hi);
      if (lo >= hi) continue;
      const int64_t n = hi - lo;
      for (int64_t h = 0; h < t.heads; ++h) {
        const float* q = t.q + (r * t.heads + h) * d;
        const float* k = kr + (lo - kb0) * stride + (h / t.group) * d;
        const float* v = vr + (lo - kb0) * stride + (h / t.group) * d;
        for (int64_t j = 0; j < n; j += 4) {  // past n: the last key again, never read back
          auto key = [&](int64_t i) { return k + std::min(j + i, n - 1) * stride; };
          Score4(sc + j, q, key(0), key(1), key(2), key(3), d, scale);
        }
        const int64_t lane = r * t.heads + h;
        FoldScores(out, lane, sc, n, d);
        ValueSumAll(out.acc + lane * d, v, stride, sc, n, d);
      }
    }
  }
}

}  // namespace tessera::kernels::internal
