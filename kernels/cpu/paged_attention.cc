#include "kernels/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cpu/check.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/dequant.h"

namespace tessera::kernels {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kRows = 16;  // query rows per work item

struct Dims {
  int64_t t, hq, hkv, d, group, kv_width;
};

Dims Check(const Tensor& out, const Tensor* lse, const ConstTensor& q, const PagedKv& c,
           std::span<const PagedSeq> seqs, int64_t head_dim) {
  TESSERA_KCHECK(out.type == DType::kF32 && q.type == DType::kF32 && out.device == Device::kCpu &&
                     q.device == Device::kCpu,
                 "PagedAttention: out and q must be CPU f32");
  TESSERA_KCHECK(out.data != q.data, "PagedAttention: out aliases q");
  TESSERA_KCHECK(head_dim > 0 && q.cols() % head_dim == 0, "PagedAttention: bad head_dim");
  TESSERA_KCHECK(out.rows() == q.rows() && out.cols() == q.cols(), "PagedAttention: out != q shape");
  TESSERA_KCHECK(c.block_size > 0 && c.num_blocks > 0 && c.k != nullptr && c.v != nullptr,
                 "PagedAttention: empty cache");
  TESSERA_KCHECK(c.type == DType::kF32 || c.type == DType::kF16 || c.type == DType::kBF16,
                 "PagedAttention: cache type must be F32, F16 or BF16");
  const int64_t hq = q.cols() / head_dim;
  TESSERA_KCHECK(c.kv_heads > 0 && hq % c.kv_heads == 0, "PagedAttention: Hq % Hkv != 0");
  const Dims d{q.rows(), hq, c.kv_heads, head_dim, hq / c.kv_heads, c.kv_heads * head_dim};
  TESSERA_KCHECK(c.block_stride >= c.block_size * d.kv_width, "PagedAttention: block_stride");
  if (lse != nullptr) {
    TESSERA_KCHECK(lse->type == DType::kF32 && lse->numel() == d.t * d.hq,
                   "PagedAttention: lse must be f32 [T, Hq]");
  }
  int64_t rows = 0;
  for (const PagedSeq& s : seqs) {
    TESSERA_KCHECK(s.q_begin == rows && s.q_len >= 0, "PagedAttention: q rows out of order");
    TESSERA_KCHECK(s.first_position >= 0 && s.first_position + s.q_len <= s.kv_len,
                   "PagedAttention: queries past the keys");
    const int64_t nb = (s.kv_len + c.block_size - 1) / c.block_size;
    TESSERA_KCHECK(static_cast<int64_t>(s.blocks.size()) >= nb, "PagedAttention: short table");
    for (int64_t b = 0; b < nb; ++b) {
      TESSERA_KCHECK(s.blocks[b] >= 0 && s.blocks[b] < c.num_blocks,
                     "PagedAttention: block id out of range");
    }
    rows += s.q_len;
  }
  TESSERA_KCHECK(rows == d.t, "PagedAttention: sequences must cover every q row");
  return d;
}

// out[n] f32 <- n elements of the cache at element `offset` of `base`.
void WidenRow(float* out, const void* base, DType type, int64_t offset, int64_t n) {
  LoadFloatRow(out, static_cast<const uint8_t*>(base) + offset * Info(type).block_bytes, type, n);
}

// `rows` consecutive keys (or values) of one KV head as f32 rows `*stride` floats apart:
// the cache itself when it is f32, else the rows widened into `buf` (rows * d floats).
const float* HeadRows(const void* base, DType type, int64_t offset, int64_t rows, int64_t d,
                      int64_t width, float* buf, int64_t* stride) {
  if (type == DType::kF32) {
    *stride = width;
    return static_cast<const float*>(base) + offset;
  }
  for (int64_t r = 0; r < rows; ++r) WidenRow(buf + r * d, base, type, offset + r * width, d);
  *stride = d;
  return buf;
}

struct Item {
  int64_t seq, kv_head, row0, rows;  // rows [row0, row0 + rows) of the sequence's queries
};

}  // namespace

void PagedAttention(Tensor out, Tensor* lse, ConstTensor q, const PagedKv& c,
                    std::span<const PagedSeq> seqs, int64_t head_dim, int64_t window,
                    float scale) {
  const Dims d = Check(out, lse, q, c, seqs, head_dim);
  std::vector<Item> items;
  for (int64_t i = 0; i < static_cast<int64_t>(seqs.size()); ++i) {
    for (int64_t r0 = 0; r0 < seqs[i].q_len; r0 += kRows) {
      for (int64_t h = 0; h < d.hkv; ++h) items.push_back({i, h, r0, std::min(kRows, seqs[i].q_len - r0)});
    }
  }
  ParallelFor(static_cast<int64_t>(items.size()), 1, [&](int64_t i0, int64_t i1) {
    const int64_t lanes = kRows * d.group;  // (row, head) pairs of one item
    std::vector<float> m(lanes), l(lanes), scores(c.block_size);
    std::vector<float> kbuf, vbuf;  // one block of one KV head, widened (16-bit caches)
    if (c.type != DType::kF32) {
      kbuf.resize(c.block_size * d.d);
      vbuf.resize(c.block_size * d.d);
    }
    for (int64_t it = i0; it < i1; ++it) {
      const Item& w = items[it];
      const PagedSeq& s = seqs[w.seq];
      const int64_t n = w.rows * d.group;
      std::fill(m.begin(), m.begin() + n, kNegInf);
      std::fill(l.begin(), l.begin() + n, 0.0f);
      auto acc_of = [&](int64_t r, int64_t g) {
        return out.as<float>() + (s.q_begin + w.row0 + r) * d.hq * d.d + (w.kv_head * d.group + g) * d.d;
      };
      for (int64_t r = 0; r < w.rows; ++r) {
        for (int64_t g = 0; g < d.group; ++g) std::fill(acc_of(r, g), acc_of(r, g) + d.d, 0.0f);
      }
      // Keys any row of the item can see: up to the last row's position, from the first
      // row's window start.
      const int64_t p_first = s.first_position + w.row0, p_last = p_first + w.rows - 1;
      const int64_t k_lo = window > 0 ? std::max<int64_t>(0, p_first - window + 1) : 0;
      for (int64_t b = k_lo / c.block_size; b * c.block_size <= p_last; ++b) {
        const int64_t kb0 = b * c.block_size;
        const int64_t kb1 = std::min({kb0 + c.block_size, s.kv_len, p_last + 1});
        // Rows [kb0, kb1) of this block, for this KV head.
        const int64_t at = s.blocks[b] * c.block_stride + w.kv_head * d.d;
        int64_t ks = 0, vs = 0;
        const float* kblock = HeadRows(c.k, c.type, at, kb1 - kb0, d.d, d.kv_width, kbuf.data(), &ks);
        const float* vblock = HeadRows(c.v, c.type, at, kb1 - kb0, d.d, d.kv_width, vbuf.data(), &vs);
        for (int64_t r = 0; r < w.rows; ++r) {
          const int64_t pos = p_first + r;
          const int64_t lo = std::max(kb0, window > 0 ? pos - window + 1 : int64_t{0});
          const int64_t hi = std::min(kb1, pos + 1);
          if (lo >= hi) continue;
          for (int64_t g = 0; g < d.group; ++g) {
            const float* qi =
                q.as<const float>() + (s.q_begin + w.row0 + r) * d.hq * d.d + (w.kv_head * d.group + g) * d.d;
            float bmax = kNegInf;
            for (int64_t p = lo; p < hi; ++p) {
              const float sc = scale * simd::Dot(qi, kblock + (p - kb0) * ks, d.d);
              scores[p - lo] = sc;
              bmax = std::max(bmax, sc);
            }
            const int64_t lane = r * d.group + g;
            float* acc = acc_of(r, g);
            if (bmax > m[lane]) {
              const float rescale = std::exp(m[lane] - bmax);  // 0 on the first visible block
              simd::Scale(acc, rescale, d.d);
              l[lane] *= rescale;
              m[lane] = bmax;
            }
            l[lane] += simd::ExpSubSum(scores.data(), hi - lo, m[lane]);
            for (int64_t p = lo; p < hi; ++p) {
              simd::Axpy(acc, scores[p - lo], vblock + (p - kb0) * vs, d.d);
            }
          }
        }
      }
      for (int64_t r = 0; r < w.rows; ++r) {
        for (int64_t g = 0; g < d.group; ++g) {
          const int64_t lane = r * d.group + g;
          if (l[lane] > 0) simd::Scale(acc_of(r, g), 1.0f / l[lane], d.d);
          if (lse != nullptr) {
            lse->as<float>()[(s.q_begin + w.row0 + r) * d.hq + w.kv_head * d.group + g] =
                l[lane] > 0 ? m[lane] + std::log(l[lane]) : kNegInf;
          }
        }
      }
    }
  });
}

void PagedAttentionReference(Tensor out, Tensor* lse, ConstTensor q, const PagedKv& c,
                             std::span<const PagedSeq> seqs, int64_t head_dim, int64_t window,
                             float scale) {
  const Dims d = Check(out, lse, q, c, seqs, head_dim);
  std::vector<float> lse_all(d.t * d.hq);
  for (const PagedSeq& s : seqs) {
    if (s.q_len == 0) continue;
    std::vector<float> k(s.kv_len * d.kv_width), v(s.kv_len * d.kv_width);
    std::vector<int32_t> kpos(s.kv_len), qpos(s.q_len);
    for (int64_t p = 0; p < s.kv_len; ++p) {
      const int64_t at = s.blocks[p / c.block_size] * c.block_stride + (p % c.block_size) * d.kv_width;
      WidenRow(k.data() + p * d.kv_width, c.k, c.type, at, d.kv_width);
      WidenRow(v.data() + p * d.kv_width, c.v, c.type, at, d.kv_width);
      kpos[p] = static_cast<int32_t>(p);
    }
    for (int64_t i = 0; i < s.q_len; ++i) qpos[i] = static_cast<int32_t>(s.first_position + i);
    Tensor o(out.as<float>() + s.q_begin * d.hq * d.d, DType::kF32, {s.q_len, d.hq * d.d});
    Tensor ls(lse_all.data() + s.q_begin * d.hq, DType::kF32, {s.q_len, d.hq});
    ConstTensor qs(q.as<const float>() + s.q_begin * d.hq * d.d, DType::kF32, {s.q_len, d.hq * d.d});
    AttentionReference(o, ls, qs, ConstTensor(k.data(), DType::kF32, {s.kv_len, d.kv_width}),
                       ConstTensor(v.data(), DType::kF32, {s.kv_len, d.kv_width}), qpos.data(),
                       kpos.data(), d.d, window, scale);
  }
  if (lse != nullptr) std::copy(lse_all.begin(), lse_all.end(), lse->as<float>());
}

}  // namespace tessera::kernels
