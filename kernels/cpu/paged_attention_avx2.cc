// PagedAttention's AVX2 kernel for one split (paged_attention_internal.h): scores four keys
// at a time (one horizontal reduction per four keys), exponentials eight at a time, and the
// value sum with the lane's output held in registers across a block. 16-bit caches are
// widened one block of one KV head at a time.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/paged_attention_internal.h"
#include "kernels/cpu/simd.h"

namespace tessera::kernels::internal {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

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

// x[i] = exp(x[i] - m) for i < n (x has room for n rounded up to 8); returns the sum.
TESSERA_AVX2 float ExpSum(float* x, int64_t n, float m) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256 sum = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 8) {
    __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    if (n - i < 8) {  // zero the lanes past n
      const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - i)), idx);
      e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
    }
    _mm256_storeu_ps(x + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  return HSum(sum);
}

TESSERA_AVX2 void ScaleRow(float* x, float alpha, int64_t d) {
  const __m256 a = _mm256_set1_ps(alpha);
  for (int64_t c = 0; c < d; c += 8) _mm256_storeu_ps(x + c, _mm256_mul_ps(a, _mm256_loadu_ps(x + c)));
}

}  // namespace

TESSERA_AVX2 void AttendSplitAvx2(const SplitTask& t, Partial out, SplitScratch scratch) {
  const PagedKv& c = *t.cache;
  const int64_t d = t.d, lanes = t.rows * t.heads, width = c.kv_heads * d, bs = c.block_size;
  std::fill(out.m, out.m + lanes, kNegInf);
  std::fill(out.l, out.l + lanes, 0.0f);
  std::fill(out.acc, out.acc + lanes * d, 0.0f);
  const int64_t p_last = t.first_position + t.rows - 1;
  const int64_t lo_all =
      std::max(t.k_begin, t.window > 0 ? t.first_position - t.window + 1 : int64_t{0});
  const int64_t hi_all = std::min(t.k_end, p_last + 1);
  const __m128 scale = _mm_set1_ps(t.scale);
  float* sc = scratch.scores;
  for (int64_t b = lo_all / bs; b * bs < hi_all; ++b) {
    const int64_t kb0 = std::max(b * bs, lo_all), kb1 = std::min((b + 1) * bs, hi_all);
    const int64_t at = t.blocks[b] * c.block_stride + (kb0 - b * bs) * width;
    const float *kr, *vr;  // key/value kb0, every head; rows `width` floats apart
    const int64_t stride = width;
    if (c.type == DType::kF32) {
      kr = static_cast<const float*>(c.k) + at;
      vr = static_cast<const float*>(c.v) + at;
    } else {
      const auto* k16 = static_cast<const uint16_t*>(c.k) + at;
      const auto* v16 = static_cast<const uint16_t*>(c.v) + at;
      auto widen = c.type == DType::kF16 ? simd::HalfToFloatRow : simd::Bf16ToFloatRow;
      widen(scratch.k, k16, (kb1 - kb0) * width);  // rows kb0.. are contiguous in the block
      widen(scratch.v, v16, (kb1 - kb0) * width);
      kr = scratch.k, vr = scratch.v;
    }
    for (int64_t r = 0; r < t.rows; ++r) {
      const int64_t pos = t.first_position + r;
      const int64_t lo = std::max(kb0, t.window > 0 ? pos - t.window + 1 : int64_t{0});
      const int64_t hi = std::min(kb1, pos + 1);
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
        float* acc = out.acc + lane * d;
        const float bmax = *std::max_element(sc, sc + n);
        if (bmax > out.m[lane]) {
          if (out.l[lane] > 0) {
            const float rescale = std::exp(out.m[lane] - bmax);
            ScaleRow(acc, rescale, d);
            out.l[lane] *= rescale;
          }
          out.m[lane] = bmax;
        }
        out.l[lane] += ExpSum(sc, n, out.m[lane]);
        ValueSumAll(acc, v, stride, sc, n, d);
      }
    }
  }
}

}  // namespace tessera::kernels::internal
