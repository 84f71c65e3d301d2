#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/check.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"

namespace tessera::kernels {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Dims {
  int64_t t, s, hq, hkv, d;
};

Dims CheckShapes(const Tensor& out, const Tensor* lse, const ConstTensor& q, const ConstTensor& k,
                 const ConstTensor& v, int64_t head_dim) {
  TESSERA_KCHECK(out.type == DType::kF32 && q.type == DType::kF32 && k.type == DType::kF32 &&
                     v.type == DType::kF32,
                 "Attention: all tensors must be f32");
  TESSERA_KCHECK(out.device == Device::kCpu && q.device == Device::kCpu &&
                     k.device == Device::kCpu && v.device == Device::kCpu,
                 "Attention: CPU kernel handed a non-CPU tensor");
  TESSERA_KCHECK(head_dim > 0 && q.cols() % head_dim == 0 && k.cols() % head_dim == 0,
                 "Attention: q and k widths must be multiples of head_dim");
  const Dims d{q.rows(), k.rows(), q.cols() / head_dim, k.cols() / head_dim, head_dim};
  TESSERA_KCHECK(d.hkv > 0 && d.hq % d.hkv == 0, "Attention: Hq must be a multiple of Hkv");
  TESSERA_KCHECK(v.rows() == d.s && v.cols() == k.cols(), "Attention: v must be [S, Hkv*D]");
  TESSERA_KCHECK(out.rows() == d.t && out.cols() == q.cols(), "Attention: out must be [T, Hq*D]");
  TESSERA_KCHECK(out.data != q.data && out.data != k.data && out.data != v.data,
                 "Attention: out aliases an input");
  if (lse != nullptr) {
    TESSERA_KCHECK(lse->type == DType::kF32 && lse->device == Device::kCpu &&
                       lse->numel() == d.t * d.hq,
                   "Attention: lse must be CPU f32 [T, Hq]");
  }
  return d;
}

inline bool Visible(int32_t q_pos, int32_t k_pos, int64_t window) {
  return k_pos <= q_pos && (window == 0 || static_cast<int64_t>(q_pos) - k_pos < window);
}

void AttentionImpl(Tensor out, Tensor* lse, ConstTensor q, ConstTensor k, ConstTensor v,
                   const int32_t* q_pos, const int32_t* kv_pos, int64_t head_dim,
                   int64_t window, float scale) {
  const Dims d = CheckShapes(out, lse, q, k, v, head_dim);
  const int64_t group = d.hq / d.hkv, kv_width = d.hkv * d.d;
  constexpr int64_t kBlock = 128;  // keys scored per step of the online softmax
  ParallelFor(d.t * d.hq, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores(kBlock);
    std::vector<int32_t> keys(kBlock);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / d.hq, h = i % d.hq, kvh = h / group;
      const float* qi = q.as<const float>() + t * d.hq * d.d + h * d.d;
      float* acc = out.as<float>() + t * d.hq * d.d + h * d.d;
      std::fill(acc, acc + d.d, 0.0f);
      float m = kNegInf, l = 0;
      for (int64_t s0 = 0; s0 < d.s; s0 += kBlock) {
        int64_t n = 0;
        float block_max = kNegInf;
        for (int64_t s = s0; s < std::min(d.s, s0 + kBlock); ++s) {
          if (!Visible(q_pos[t], kv_pos[s], window)) continue;
          const float sc = scale * simd::Dot(qi, k.as<const float>() + s * kv_width + kvh * d.d, d.d);
          block_max = std::max(block_max, sc);
          keys[n] = static_cast<int32_t>(s);
          scores[n++] = sc;
        }
        if (n == 0) continue;
        if (block_max > m) {  // rescale what we have to the new maximum
          const float r = std::exp(m - block_max);  // 0 on the first visible block
          simd::Scale(acc, r, d.d);
          l *= r;
          m = block_max;
        }
        l += simd::ExpSubSum(scores.data(), n, m);
        for (int64_t j = 0; j < n; ++j) {
          simd::Axpy(acc, scores[j], v.as<const float>() + keys[j] * kv_width + kvh * d.d, d.d);
        }
      }
      if (l > 0) simd::Scale(acc, 1.0f / l, d.d);
      if (lse != nullptr) lse->as<float>()[i] = l > 0 ? m + std::log(l) : kNegInf;
    }
  });
}

}  // namespace

void Attention(Tensor out, ConstTensor q, ConstTensor k, ConstTensor v, const int32_t* q_positions,
               const int32_t* kv_positions, int64_t head_dim, int64_t window, float scale) {
  AttentionImpl(out, nullptr, q, k, v, q_positions, kv_positions, head_dim, window, scale);
}

void Attention(Tensor out, Tensor lse, ConstTensor q, ConstTensor k, ConstTensor v,
               const int32_t* q_positions, const int32_t* kv_positions, int64_t head_dim,
               int64_t window, float scale) {
  AttentionImpl(out, &lse, q, k, v, q_positions, kv_positions, head_dim, window, scale);
}

void AttentionReference(Tensor out, Tensor lse, ConstTensor q, ConstTensor k, ConstTensor v,
                        const int32_t* q_pos, const int32_t* kv_pos, int64_t head_dim,
                        int64_t window, float scale) {
  const Dims d = CheckShapes(out, &lse, q, k, v, head_dim);
  const int64_t group = d.hq / d.hkv;
  std::vector<float> p(d.s);
  for (int64_t t = 0; t < d.t; ++t) {
    for (int64_t h = 0; h < d.hq; ++h) {
      const float* qi = q.as<const float>() + (t * d.hq + h) * d.d;
      const int64_t kvh = h / group;
      float m = kNegInf;
      for (int64_t s = 0; s < d.s; ++s) {
        p[s] = kNegInf;
        if (!Visible(q_pos[t], kv_pos[s], window)) continue;
        const float* ks = k.as<const float>() + (s * d.hkv + kvh) * d.d;
        float dot = 0;
        for (int64_t j = 0; j < d.d; ++j) dot += qi[j] * ks[j];
        p[s] = scale * dot;
        m = std::max(m, p[s]);
      }
      float sum = 0;
      for (int64_t s = 0; s < d.s; ++s) sum += (p[s] = p[s] == kNegInf ? 0 : std::exp(p[s] - m));
      float* o = out.as<float>() + (t * d.hq + h) * d.d;
      for (int64_t j = 0; j < d.d; ++j) {
        float acc = 0;
        for (int64_t s = 0; s < d.s; ++s) acc += p[s] * v.as<const float>()[(s * d.hkv + kvh) * d.d + j];
        o[j] = sum > 0 ? acc / sum : 0;
      }
      lse.as<float>()[t * d.hq + h] = sum > 0 ? m + std::log(sum) : kNegInf;
    }
  }
}

}  // namespace tessera::kernels
