// Batched paged attention against its reference (gather + AttentionReference): random
// block tables, mixed decode tokens and prefill chunks (chunks that start mid-sequence
// among them), sliding windows, GQA ratios 1/2/4/8 and odd head counts; f32, f16 and
// bf16 caches; the AVX2 and the portable kernels. And the invariances the engine relies on:
// a row's output is the same bits alone or batched, split over threads or not, and however
// its prompt was chunked.
#include "kernels/paged_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/cpu/simd.h"

namespace tessera::kernels {
namespace {

using testing::MaxRelError;
using testing::RandomFloats;

struct Case {
  int64_t hq, hkv, d, block, window;
  std::vector<std::pair<int64_t, int64_t>> seqs;  // (kv_len, q_len): the last q_len are new
  DType type = DType::kF32;
};

void Compare(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t width = c.hkv * c.d;
  int64_t blocks_needed = 0, t = 0;
  for (auto [kv, ql] : c.seqs) blocks_needed += (kv + c.block - 1) / c.block, t += ql;
  const int64_t num_blocks = blocks_needed + 5;
  // Interleaved K|V per block, as the engine's cache lays them out, plus padding rows.
  const int64_t stride = 2 * c.block * width + 8;
  std::vector<float> pool = RandomFloats(num_blocks * stride, seed + 1);
  std::vector<uint16_t> pool16(pool.size());  // the same values rounded, for 16-bit caches
  if (c.type == DType::kF16) simd::FloatToHalfRow(pool16.data(), pool.data(), pool.size());
  if (c.type == DType::kBF16) simd::FloatToBf16Row(pool16.data(), pool.data(), pool.size());
  const bool wide = c.type == DType::kF32;
  std::vector<int32_t> ids(num_blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<std::vector<int32_t>> tables;
  std::vector<PagedSeq> seqs;
  int64_t next = 0, row = 0;
  for (auto [kv, ql] : c.seqs) {
    const int64_t nb = (kv + c.block - 1) / c.block;
    tables.emplace_back(ids.begin() + next, ids.begin() + next + nb);
    next += nb;
  }
  for (size_t i = 0; i < c.seqs.size(); ++i) {
    const auto [kv, ql] = c.seqs[i];
    seqs.push_back({.q_begin = row, .q_len = ql, .first_position = kv - ql, .kv_len = kv,
                    .blocks = tables[i]});
    row += ql;
  }
  const PagedKv cache{.k = wide ? static_cast<const void*>(pool.data()) : pool16.data(),
                      .v = wide ? static_cast<const void*>(pool.data() + c.block * width)
                                : pool16.data() + c.block * width,
                      .type = c.type,
                      .num_blocks = num_blocks, .block_size = c.block, .block_stride = stride,
                      .kv_heads = c.hkv};
  const std::vector<float> q = RandomFloats(t * c.hq * c.d, seed + 2);
  std::vector<float> out(t * c.hq * c.d, 7.0f), ref(out.size(), 5.0f);
  std::vector<float> lse(t * c.hq, 7.0f), ref_lse(lse.size(), 5.0f);
  Tensor o(out.data(), DType::kF32, {t, c.hq * c.d}), ro(ref.data(), DType::kF32, {t, c.hq * c.d});
  Tensor l(lse.data(), DType::kF32, {t, c.hq}), rl(ref_lse.data(), DType::kF32, {t, c.hq});
  ConstTensor qt(q.data(), DType::kF32, {t, c.hq * c.d});
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.d));
  PagedAttention(o, &l, qt, cache, seqs, c.d, c.window, scale);
  PagedAttentionReference(ro, &rl, qt, cache, seqs, c.d, c.window, scale);
  EXPECT_LT(MaxRelError(out, ref), 1e-5) << "hq " << c.hq << " hkv " << c.hkv << " window "
                                         << c.window << " type " << Name(c.type);
  EXPECT_LT(MaxRelError(lse, ref_lse), 1e-5);
  // Without lse, the same output.
  std::vector<float> out2(out.size(), 3.0f);
  PagedAttention(Tensor(out2.data(), DType::kF32, {t, c.hq * c.d}), nullptr, qt, cache, seqs, c.d,
                 c.window, scale);
  EXPECT_EQ(out2, out);
}

TEST(PagedAttentionTest, MatchesReference) {
  // Decode tokens, prefill chunks from position 0 and from mid-sequence, block boundaries
  // crossed and landed on exactly, a one-token sequence.
  const std::vector<std::pair<int64_t, int64_t>> mix = {
      {1, 1}, {37, 1}, {16, 16}, {50, 13}, {129, 1}, {64, 33}, {17, 17}, {200, 40}};
  uint32_t seed = 1;
  for (auto [hq, hkv] : std::vector<std::pair<int64_t, int64_t>>{
           {4, 4}, {8, 4}, {8, 2}, {16, 2}, {5, 5}, {9, 3}, {7, 1}, {6, 3}}) {
    for (int64_t window : {int64_t{0}, int64_t{1}, int64_t{20}, int64_t{64}}) {
      for (int64_t block : {int64_t{16}, int64_t{5}}) {
        Compare({.hq = hq, .hkv = hkv, .d = 32, .block = block, .window = window, .seqs = mix}, seed++);
      }
    }
  }
  Compare({.hq = 2, .hkv = 1, .d = 128, .block = 32, .window = 0, .seqs = {{300, 1}, {300, 300}}}, 99);
  for (DType type : {DType::kF16, DType::kBF16}) {  // 16-bit caches: widened as they are read
    for (int64_t window : {int64_t{0}, int64_t{20}}) {
      Compare({.hq = 8, .hkv = 2, .d = 32, .block = 16, .window = window, .seqs = mix, .type = type},
              seed++);
      Compare({.hq = 9, .hkv = 3, .d = 24, .block = 5, .window = window, .seqs = mix, .type = type},
              seed++);
    }
  }
  Compare({.hq = 3, .hkv = 3, .d = 8, .block = 1, .window = 0, .seqs = {{9, 4}, {3, 1}}}, 100);
  // Long keys: many 64-key splits, merged by log-sum-exp (decode fans them out over threads).
  Compare({.hq = 9, .hkv = 3, .d = 64, .block = 16, .window = 0, .seqs = {{2000, 1}}}, 101);
  Compare({.hq = 9, .hkv = 3, .d = 64, .block = 16, .window = 700, .seqs = {{2000, 1}, {900, 20}}},
          102);
  Compare({.hq = 8, .hkv = 2, .d = 64, .block = 16, .window = 0, .seqs = {{1500, 1}},
           .type = DType::kF16}, 103);
}

TEST(PagedAttentionTest, PortableKernelMatchesReference) {
  simd::ForcePortableForTesting(true);
  const std::vector<std::pair<int64_t, int64_t>> mix = {{1, 1}, {37, 1}, {50, 13}, {200, 40}, {700, 1}};
  uint32_t seed = 200;
  for (int64_t window : {int64_t{0}, int64_t{20}}) {
    Compare({.hq = 8, .hkv = 2, .d = 32, .block = 16, .window = window, .seqs = mix}, seed++);
    Compare({.hq = 9, .hkv = 3, .d = 24, .block = 5, .window = window, .seqs = mix,
             .type = DType::kF16}, seed++);
  }
  simd::ForcePortableForTesting(false);
}

TEST(PagedAttentionTest, ManyDecodesEqualEachAlone) {
  // Batching must not change any sequence's result (bit for bit: the same work per item).
  std::mt19937 rng(5);
  const int64_t hq = 8, hkv = 2, d = 64, block = 16, width = hkv * d;
  std::vector<int64_t> lens(24);
  for (auto& n : lens) n = 1 + static_cast<int64_t>(rng() % 1500);
  int64_t nb = 0;
  for (int64_t n : lens) nb += (n + block - 1) / block;
  const int64_t stride = 2 * block * width;
  std::vector<float> pool = RandomFloats(nb * stride, 6);
  std::vector<std::vector<int32_t>> tables;
  int32_t next = 0;
  for (int64_t n : lens) {
    tables.emplace_back();
    for (int64_t b = 0; b < (n + block - 1) / block; ++b) tables.back().push_back(next++);
  }
  const PagedKv cache{.k = pool.data(), .v = pool.data() + block * width, .num_blocks = nb,
                      .block_size = block, .block_stride = stride, .kv_heads = hkv};
  const int64_t t = static_cast<int64_t>(lens.size());
  const std::vector<float> q = RandomFloats(t * hq * d, 7);
  std::vector<PagedSeq> all;
  for (int64_t i = 0; i < t; ++i) all.push_back({i, 1, lens[i] - 1, lens[i], tables[i]});
  std::vector<float> batched(t * hq * d);
  PagedAttention(Tensor(batched.data(), DType::kF32, {t, hq * d}), nullptr,
                 ConstTensor(q.data(), DType::kF32, {t, hq * d}), cache, all, d, 0, 0.125f);
  for (int64_t i = 0; i < t; ++i) {
    std::vector<float> alone(hq * d);
    const PagedSeq one{0, 1, lens[i] - 1, lens[i], tables[i]};
    PagedAttention(Tensor(alone.data(), DType::kF32, {1, hq * d}), nullptr,
                   ConstTensor(q.data() + i * hq * d, DType::kF32, {1, hq * d}), cache, {&one, 1},
                   d, 0, 0.125f);
    EXPECT_TRUE(std::equal(alone.begin(), alone.end(), batched.begin() + i * hq * d)) << i;
  }
}

TEST(PagedAttentionTest, ChunkingDoesNotChangeRows) {
  // A 300-token prompt attended in one call, in three chunks, and its last row as a decode
  // token: every row the same bits (the engine's chunked prefill and preemption rely on it).
  for (int64_t window : {int64_t{0}, int64_t{90}}) {
    const int64_t hq = 6, hkv = 2, d = 64, block = 16, width = hkv * d, len = 300;
    const int64_t nb = (len + block - 1) / block, stride = 2 * block * width;
    std::vector<float> pool = RandomFloats(nb * stride, 8);
    std::vector<int32_t> table(nb);
    std::iota(table.rbegin(), table.rend(), 0);  // blocks in reverse order
    const PagedKv cache{.k = pool.data(), .v = pool.data() + block * width, .num_blocks = nb,
                        .block_size = block, .block_stride = stride, .kv_heads = hkv};
    const std::vector<float> q = RandomFloats(len * hq * d, 9);
    auto run = [&](int64_t begin, int64_t end) {
      std::vector<float> o((end - begin) * hq * d);
      const PagedSeq s{0, end - begin, begin, end, table};
      PagedAttention(Tensor(o.data(), DType::kF32, {end - begin, hq * d}), nullptr,
                     ConstTensor(q.data() + begin * hq * d, DType::kF32, {end - begin, hq * d}),
                     cache, {&s, 1}, d, window, 0.125f);
      return o;
    };
    const std::vector<float> whole = run(0, len);
    std::vector<float> chunked;
    for (auto [b, e] : {std::pair<int64_t, int64_t>{0, 37}, {37, 150}, {150, len}}) {
      const std::vector<float> part = run(b, e);
      chunked.insert(chunked.end(), part.begin(), part.end());
    }
    EXPECT_EQ(chunked, whole) << "window " << window;
    const std::vector<float> last = run(len - 1, len);
    EXPECT_TRUE(std::equal(last.begin(), last.end(), whole.end() - hq * d)) << "window " << window;
  }
}

}  // namespace
}  // namespace tessera::kernels
