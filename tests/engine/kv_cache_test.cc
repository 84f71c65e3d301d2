#include "runtime/engine/kv_cache.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "kernels/dequant.h"
#include "tests/engine/engine_test_util.h"

namespace tessera {
namespace {

using kernels::DType;

// Element i of a cache view of `type`, as f32.
float At(const void* base, DType type, int64_t i) {
  switch (type) {
    case DType::kF16: return kernels::HalfToFloat(static_cast<const uint16_t*>(base)[i]);
    case DType::kBF16: return kernels::Bf16ToFloat(static_cast<const uint16_t*>(base)[i]);
    default: return static_cast<const float*>(base)[i];
  }
}

// `v` as a cache of `type` stores it.
float Stored(float v, DType type) {
  switch (type) {
    case DType::kF16: return kernels::HalfToFloat(kernels::FloatToHalf(v));
    case DType::kBF16: return kernels::Bf16ToFloat(kernels::FloatToBf16(v));
    default: return v;
  }
}


// A cache too large for memory (or for int64) is a Status naming it and its bytes, not
// std::bad_alloc; a bad shape is INVALID_ARGUMENT.
TEST(KvCache, CreateFailsClosed) {
  // 1000 layers x 2^20 blocks x 16 tokens x K,V x 4096 f32 = 512 TiB.
  auto huge = KvCache::Create({.layers = 1000, .kv_dim = 4096, .block_size = 16, .num_blocks = 1 << 20});
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(huge.status().message().find("KV cache (1000 layers x 1048576 blocks x 16 tokens"),
            std::string::npos)
      << huge.status();
  EXPECT_NE(huge.status().message().find("cannot allocate 549755813888000 bytes"), std::string::npos)
      << huge.status();
  auto overflow = KvCache::Create(
      {.layers = int64_t{1} << 40, .kv_dim = 1 << 20, .block_size = 16, .num_blocks = 1 << 20});
  EXPECT_EQ(overflow.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(overflow.status().message().find("overflows int64"), std::string::npos);
  for (const KvCacheShape& bad : {KvCacheShape{.layers = 0, .kv_dim = 2, .block_size = 2, .num_blocks = 2},
                                  KvCacheShape{.layers = 1, .kv_dim = -2, .block_size = 2, .num_blocks = 2},
                                  KvCacheShape{.layers = 1, .kv_dim = 2, .block_size = 0, .num_blocks = 2},
                                  KvCacheShape{.layers = 1, .kv_dim = 2, .block_size = 2,
                                               .num_blocks = int64_t{1} << 31}}) {
    EXPECT_EQ(KvCache::Create(bad).status().code(), absl::StatusCode::kInvalidArgument);
  }
  auto q8 = KvCache::Create({.layers = 1, .kv_dim = 2, .block_size = 2, .num_blocks = 2,
                             .type = DType::kQ8_0});
  EXPECT_EQ(q8.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(q8.status().message().find("Q8_0"), std::string::npos) << q8.status();
  auto ok = KvCache::Create({.layers = 2, .kv_dim = 3, .block_size = 4, .num_blocks = 5});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->bytes(), 2 * 5 * 2 * 4 * 3 * 4);
  for (DType t : {DType::kF16, DType::kBF16}) {  // half the bytes
    auto half = KvCache::Create({.layers = 2, .kv_dim = 3, .block_size = 4, .num_blocks = 5, .type = t});
    ASSERT_TRUE(half.ok()) << half.status();
    EXPECT_EQ((*half)->bytes(), 2 * 5 * 2 * 4 * 3 * 2);
  }
}

TEST(KvCache, TypeNames) {
  EXPECT_EQ(*KvTypeFromName("f32"), DType::kF32);
  EXPECT_EQ(*KvTypeFromName("F16"), DType::kF16);
  EXPECT_EQ(*KvTypeFromName("bf16"), DType::kBF16);
  for (const char* bad : {"", "q8_0", "f64", "fp16"}) {
    absl::StatusOr<DType> t = KvTypeFromName(bad);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(t.status().message().find(absl::StrCat("'", bad, "'")), std::string::npos);
  }
}

TEST(KvCache, PlanIsPureApplyAllocatesBlocks) {
  std::unique_ptr<KvCache> cache_owner = test_util::NewCache({.layers = 2, .kv_dim = 3, .block_size = 4, .num_blocks = 5});
  ASSERT_NE(cache_owner, nullptr);
  KvCache& cache = *cache_owner;
  const KvCache::Append a[] = {{7, 6}, {9, 1}};
  auto plan = cache.PlanAppend(a);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->new_blocks, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(cache.free_blocks(), 5);  // planning changed nothing
  ASSERT_TRUE(cache.Apply(*plan).ok());
  EXPECT_EQ(cache.free_blocks(), 2);
  EXPECT_EQ(cache.length(7), 6);
  // Two more tokens for seq 7 fit in its second block; three more need a new one.
  const KvCache::Append b[] = {{7, 2}};
  EXPECT_EQ(cache.PlanAppend(b)->new_blocks[0], 0);
  const KvCache::Append c[] = {{7, 3}};
  EXPECT_EQ(cache.PlanAppend(c)->new_blocks[0], 1);
}

TEST(KvCache, FullIsResourceExhaustedAndFreeReturnsBlocks) {
  std::unique_ptr<KvCache> cache_owner = test_util::NewCache({.layers = 1, .kv_dim = 2, .block_size = 2, .num_blocks = 2});
  ASSERT_NE(cache_owner, nullptr);
  KvCache& cache = *cache_owner;
  const KvCache::Append too_big[] = {{1, 5}};
  auto plan = cache.PlanAppend(too_big);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(plan.status().message().find("need 3 blocks"), std::string::npos);
  const KvCache::Append fits[] = {{1, 4}};
  ASSERT_TRUE(cache.Apply(*cache.PlanAppend(fits)).ok());
  EXPECT_EQ(cache.free_blocks(), 0);
  ASSERT_TRUE(cache.Free(1).ok());
  EXPECT_EQ(cache.free_blocks(), 2);
  EXPECT_EQ(cache.length(1), 0);
  EXPECT_EQ(cache.Free(1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(KvCache, DuplicatesStalePlansAndReserveWithoutCommit) {
  std::unique_ptr<KvCache> cache_owner = test_util::NewCache({.layers = 1, .kv_dim = 2, .block_size = 2, .num_blocks = 4});
  ASSERT_NE(cache_owner, nullptr);
  KvCache& cache = *cache_owner;
  const KvCache::Append twice[] = {{1, 1}, {1, 2}};
  auto dup = cache.PlanAppend(twice);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("sequence 1 appears twice in one step"), std::string::npos);
  const KvCache::Append a[] = {{1, 3}};
  auto plan = cache.PlanAppend(a);
  ASSERT_TRUE(plan.ok());
  // Reserved but not committed (a step that failed): the length is unchanged, the blocks
  // stay with the sequence, and the same plan cannot be applied again.
  ASSERT_TRUE(cache.Reserve(*plan).ok());
  EXPECT_EQ(cache.length(1), 0);
  EXPECT_EQ(cache.free_blocks(), 2);
  EXPECT_EQ(cache.Reserve(*plan).code(), absl::StatusCode::kFailedPrecondition);
  // The retry needs no new blocks.
  auto retry = cache.PlanAppend(a);
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->new_blocks[0], 0);
  ASSERT_TRUE(cache.Apply(*retry).ok());
  EXPECT_EQ(cache.length(1), 3);
}

// K/V written through the cache are read back, rounded to its type, where its layer view
// says they are.
void CheckWritesLand(DType type) {
  SCOPED_TRACE(kernels::Name(type));
  std::unique_ptr<KvCache> cache_owner =
      test_util::NewCache({.layers = 2, .kv_dim = 2, .block_size = 3, .num_blocks = 6, .type = type});
  ASSERT_NE(cache_owner, nullptr);
  KvCache& cache = *cache_owner;
  // Interleave two sequences so their blocks are not contiguous.
  for (int step = 0; step < 4; ++step) {
    for (SeqId s : {SeqId{1}, SeqId{2}}) {
      const KvCache::Append a[] = {{s, 2}};
      const int64_t pos = cache.length(s);
      ASSERT_TRUE(cache.Apply(*cache.PlanAppend(a)).ok());
      for (int layer = 0; layer < 2; ++layer) {
        std::vector<float> k, v;
        for (int i = 0; i < 2; ++i) {
          for (int d = 0; d < 2; ++d) {
            k.push_back(1000 * s + 100 * layer + 10 * (pos + i) + d);
            v.push_back(-(1000 * s + 100 * layer + 10 * (pos + i) + d));
          }
        }
        cache.Write(layer, s, pos, k.data(), v.data(), 2);
      }
    }
  }
  for (SeqId s : {SeqId{1}, SeqId{2}}) {
    EXPECT_EQ(cache.length(s), 8);
    const std::span<const int32_t> table = cache.blocks().BlockTable(s);
    for (int layer = 0; layer < 2; ++layer) {
      const kernels::PagedKv view = cache.Layer(layer, 1);
      EXPECT_EQ(view.type, type);
      for (int p = 0; p < 8; ++p) {
        const int64_t at = table[p / 3] * view.block_stride + (p % 3) * 2;
        for (int d = 0; d < 2; ++d) {
          const float want = 1000 * s + 100 * layer + 10 * p + d;
          EXPECT_EQ(At(view.k, type, at + d), Stored(want, type));
          EXPECT_EQ(At(view.v, type, at + d), Stored(-want, type));
        }
      }
    }
  }
}

TEST(KvCache, WritesLandWhereTheLayerViewReadsThem) {
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16}) CheckWritesLand(type);
}

// A latent cache (multi-head latent attention) stores one row per position, read as both
// K and V: half the bytes of a K,V cache of the same row width.
TEST(KvCache, SharedKvStoresOneRowPerPosition) {
  KvCacheShape shape{.layers = 2, .kv_dim = 8, .block_size = 4, .num_blocks = 3};
  KvCacheShape split = shape;
  shape.shared_kv = true;
  EXPECT_EQ(shape.bytes_per_token(), 2 * 8 * 4);
  EXPECT_EQ(split.bytes_per_token(), 2 * 2 * 8 * 4);
  auto cache = KvCache::Create(shape);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ((*cache)->bytes(), 2 * 3 * 4 * 8 * 4);
  const std::vector<KvCache::Append> appends = {{7, 6}};
  auto plan = (*cache)->PlanAppend(appends);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE((*cache)->Apply(*plan).ok());
  std::vector<float> rows(6 * 8);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<float>(i) + 0.5f;
  for (int64_t layer = 0; layer < 2; ++layer) (*cache)->Write(layer, 7, 0, rows.data(), nullptr, 6);
  const std::span<const int32_t> table = (*cache)->blocks().BlockTable(7);
  for (int64_t layer = 0; layer < 2; ++layer) {
    const kernels::PagedKv kv = (*cache)->Layer(layer, 1);
    EXPECT_EQ(kv.k, kv.v);
    EXPECT_EQ(kv.block_stride, 4 * 8);
    for (int64_t p = 0; p < 6; ++p) {
      const float* row = static_cast<const float*>(kv.k) + table[p / 4] * kv.block_stride + (p % 4) * 8;
      EXPECT_EQ(std::vector<float>(row, row + 8),
                std::vector<float>(rows.begin() + p * 8, rows.begin() + (p + 1) * 8))
          << "layer " << layer << " position " << p;
    }
  }
}

}  // namespace
}  // namespace tessera
