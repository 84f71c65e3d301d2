#include "kernels/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cpu/check.h"
#include "kernels/cpu/paged_attention_internal.h"
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

// One (sequence, block of up to kRows query rows) and the splits its rows see.
struct Item {
  int64_t seq, row0, rows;
  int64_t split0, splits;  // splits [split0, split0 + splits) of kSplitKeys keys
  int64_t lanes;           // rows * Hq
  int64_t slot = 0;        // first stored partial (fanned-out items)
};

// Per-thread storage, kept between calls: the scratch of one split and two partials (the
// fold and one split) of up to `lanes` lanes.
struct Buffers {
  std::vector<float> k, v, scores, fold, part;
  void Reserve(const PagedKv& c, int64_t d, int64_t lanes) {
    const int64_t block = c.block_size * c.kv_heads * d;
    for (auto [vec, n] : {std::pair{&k, block}, {&v, block},
                          {&scores, c.block_size + 8}, {&fold, lanes * (d + 2)},
                          {&part, lanes * (d + 2)}}) {
      if (static_cast<int64_t>(vec->size()) < n) vec->resize(n);
    }
  }
  internal::SplitScratch scratch() { return {k.data(), v.data(), scores.data()}; }
};

Buffers& ThreadBuffers(const PagedKv& c, int64_t d, int64_t lanes) {
  thread_local Buffers buf;
  buf.Reserve(c, d, lanes);
  return buf;
}

// A partial laid out as [m: lanes][l: lanes][acc: lanes * d] at `p`.
internal::Partial At(float* p, int64_t lanes) { return {p, p + lanes, p + 2 * lanes}; }

// into = fold(into, from): the log-sum-exp merge, lane by lane.
void Combine(internal::Partial into, internal::Partial from, int64_t lanes, int64_t d) {
  for (int64_t i = 0; i < lanes; ++i) {
    if (from.l[i] == 0) continue;
    float* acc = into.acc + i * d;
    const float* add = from.acc + i * d;
    if (into.l[i] == 0) {
      into.m[i] = from.m[i], into.l[i] = from.l[i];
      std::copy(add, add + d, acc);
      continue;
    }
    const float m = std::max(into.m[i], from.m[i]);
    const float a = std::exp(into.m[i] - m), b = std::exp(from.m[i] - m);
    for (int64_t j = 0; j < d; ++j) acc[j] = acc[j] * a + add[j] * b;
    into.l[i] = into.l[i] * a + from.l[i] * b;
    into.m[i] = m;
  }
}

}  // namespace

namespace internal {

void ClearPartial(Partial p, int64_t lanes, int64_t d) {
  std::fill(p.m, p.m + lanes, kNegInf);
  std::fill(p.l, p.l + lanes, 0.0f);
  std::fill(p.acc, p.acc + lanes * d, 0.0f);
}

void TaskKeys(const SplitTask& t, int64_t* lo, int64_t* hi) {
  *lo = std::max(t.k_begin, t.window > 0 ? t.first_position - t.window + 1 : int64_t{0});
  *hi = std::min(t.k_end, t.first_position + t.rows);
}

void RowKeys(const SplitTask& t, int64_t r, int64_t kb0, int64_t kb1, int64_t* lo, int64_t* hi) {
  const int64_t pos = t.first_position + r;
  *lo = std::max(kb0, t.window > 0 ? pos - t.window + 1 : int64_t{0});
  *hi = std::min(kb1, pos + 1);
}

void BlockRows(const SplitTask& t, int64_t b, int64_t kb0, int64_t kb1, SplitScratch scratch,
               const float** k, const float** v) {
  const PagedKv& c = *t.cache;
  const int64_t width = c.kv_heads * t.d;
  const int64_t at = t.blocks[b] * c.block_stride + (kb0 - b * c.block_size) * width;
  if (c.type == DType::kF32) {
    *k = static_cast<const float*>(c.k) + at;
    *v = static_cast<const float*>(c.v) + at;
    return;
  }
  WidenRow(scratch.k, c.k, c.type, at, (kb1 - kb0) * width);  // rows kb0.. are contiguous
  WidenRow(scratch.v, c.v, c.type, at, (kb1 - kb0) * width);
  *k = scratch.k, *v = scratch.v;
}

void FoldScores(Partial out, int64_t lane, float* sc, int64_t n, int64_t d) {
  const float bmax = *std::max_element(sc, sc + n);
  if (bmax > out.m[lane]) {
    if (out.l[lane] > 0) {
      const float rescale = std::exp(out.m[lane] - bmax);
      simd::Scale(out.acc + lane * d, rescale, d);
      out.l[lane] *= rescale;
    }
    out.m[lane] = bmax;
  }
  out.l[lane] += simd::ExpSubSum(sc, n, out.m[lane]);
}

void AttendSplit(const SplitTask& t, Partial out, SplitScratch scratch) {
  if (t.d % 8 == 0 && simd::HasAvx2()) return AttendSplitAvx2(t, out, scratch);
  const int64_t d = t.d, stride = t.cache->kv_heads * d, bs = t.cache->block_size;
  ClearPartial(out, t.rows * t.heads, d);
  int64_t lo_all, hi_all;
  TaskKeys(t, &lo_all, &hi_all);
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
        for (int64_t p = 0; p < n; ++p) sc[p] = t.scale * simd::Dot(q, k + p * stride, d);
        const int64_t lane = r * t.heads + h;
        FoldScores(out, lane, sc, n, d);
        for (int64_t p = 0; p < n; ++p) simd::Axpy(out.acc + lane * d, sc[p], v + p * stride, d);
      }
    }
  }
}

}  // namespace internal

void PagedAttention(Tensor out, Tensor* lse, ConstTensor q, const PagedKv& c,
                    std::span<const PagedSeq> seqs, int64_t head_dim, int64_t window,
                    float scale) {
  using internal::kSplitKeys;
  const Dims d = Check(out, lse, q, c, seqs, head_dim);
  std::vector<Item> items;
  int64_t split_count = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(seqs.size()); ++i) {
    const PagedSeq& s = seqs[i];
    for (int64_t r0 = 0; r0 < s.q_len; r0 += kRows) {
      const int64_t rows = std::min(kRows, s.q_len - r0);
      // Keys any row of the block can see: from the first row's window start to the last row.
      const int64_t p_first = s.first_position + r0, p_last = p_first + rows - 1;
      const int64_t k_lo = window > 0 ? std::max<int64_t>(0, p_first - window + 1) : 0;
      const int64_t split0 = k_lo / kSplitKeys, splits = p_last / kSplitKeys - split0 + 1;
      items.push_back({i, r0, rows, split0, splits, rows * d.hq});
      split_count += splits;
    }
  }
  auto task_of = [&](const Item& w, int64_t split) {
    const PagedSeq& s = seqs[w.seq];
    const int64_t k0 = (w.split0 + split) * kSplitKeys;
    return internal::SplitTask{
        .q = q.as<const float>() + (s.q_begin + w.row0) * d.hq * d.d,
        .rows = w.rows, .heads = d.hq, .group = d.group, .d = d.d,
        .first_position = s.first_position + w.row0,
        .k_begin = k0, .k_end = std::min(k0 + kSplitKeys, s.kv_len),
        .window = window, .scale = scale, .cache = &c, .blocks = s.blocks.data()};
  };
  auto finish = [&](const Item& w, internal::Partial f) {
    const PagedSeq& s = seqs[w.seq];
    for (int64_t r = 0; r < w.rows; ++r) {
      const int64_t row = s.q_begin + w.row0 + r;
      for (int64_t head = 0; head < d.hq; ++head) {
        const int64_t lane = r * d.hq + head;
        float* o = out.as<float>() + row * d.hq * d.d + head * d.d;
        const float* acc = f.acc + lane * d.d;
        const float inv = f.l[lane] > 0 ? 1.0f / f.l[lane] : 0.0f;
        for (int64_t j = 0; j < d.d; ++j) o[j] = acc[j] * inv;
        if (lse != nullptr) {
          lse->as<float>()[row * d.hq + head] = f.l[lane] > 0 ? f.m[lane] + std::log(f.l[lane]) : kNegInf;
        }
      }
    }
  };
  const int64_t max_lanes = kRows * d.hq, part_floats = max_lanes * (d.d + 2);
  const int64_t n_items = static_cast<int64_t>(items.size());
  // Too few items to keep every thread busy, and long key ranges: every split is its own
  // task, stored, then folded per item. Otherwise each item folds its splits as it goes.
  // The results are the same bits either way.
  const bool fan_out = n_items < 4 * NumThreads() && split_count > n_items &&
                       split_count * part_floats <= (int64_t{16} << 20);
  if (!fan_out) {
    ParallelFor(n_items, 1, [&](int64_t i0, int64_t i1) {
      Buffers& buf = ThreadBuffers(c, d.d, max_lanes);
      for (int64_t it = i0; it < i1; ++it) {
        const Item& w = items[it];
        const internal::Partial fold = At(buf.fold.data(), w.lanes), part = At(buf.part.data(), w.lanes);
        internal::ClearPartial(fold, w.lanes, d.d);
        for (int64_t sp = 0; sp < w.splits; ++sp) {
          internal::AttendSplit(task_of(w, sp), part, buf.scratch());
          Combine(fold, part, w.lanes, d.d);
        }
        finish(w, fold);
      }
    });
    return;
  }
  std::vector<std::pair<int64_t, int64_t>> tasks;  // (item, split)
  int64_t slot_floats = 0;
  for (int64_t i = 0; i < n_items; ++i) {
    items[i].slot = slot_floats;
    slot_floats += items[i].splits * items[i].lanes * (d.d + 2);
    for (int64_t sp = 0; sp < items[i].splits; ++sp) tasks.emplace_back(i, sp);
  }
  std::vector<float> parts(slot_floats);
  auto part_of = [&](const Item& w, int64_t sp) {
    return At(parts.data() + w.slot + sp * w.lanes * (d.d + 2), w.lanes);
  };
  ParallelFor(static_cast<int64_t>(tasks.size()), 1, [&](int64_t t0, int64_t t1) {
    Buffers& buf = ThreadBuffers(c, d.d, 0);
    for (int64_t t = t0; t < t1; ++t) {
      const Item& w = items[tasks[t].first];
      internal::AttendSplit(task_of(w, tasks[t].second), part_of(w, tasks[t].second), buf.scratch());
    }
  });
  ParallelFor(n_items, 1, [&](int64_t i0, int64_t i1) {
    Buffers& buf = ThreadBuffers(c, d.d, max_lanes);
    for (int64_t it = i0; it < i1; ++it) {
      const Item& w = items[it];
      const internal::Partial fold = At(buf.fold.data(), w.lanes);
      internal::ClearPartial(fold, w.lanes, d.d);
      for (int64_t sp = 0; sp < w.splits; ++sp) Combine(fold, part_of(w, sp), w.lanes, d.d);
      finish(w, fold);
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
