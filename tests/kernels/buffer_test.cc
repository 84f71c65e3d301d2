// The fail-closed factories of kernels/buffer.h: shapes no storage fits and allocations
// beyond the memory available are Status values naming the tensor, not a crash.
#include "kernels/buffer.h"

#include <gtest/gtest.h>

#include <string>

namespace tessera::kernels {
namespace {

void ExpectError(const absl::Status& s, absl::StatusCode code, const std::string& fragment) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_NE(s.message().find(fragment), std::string::npos) << s;
}

TEST(OwnedTensorCreate, MoreThanFourDimsIsInvalidArgumentNamingTheTensor) {
  auto t = OwnedTensor::Create(DType::kF32, {1, 2, 3, 4, 5}, "tensor conv3d.weight");
  ExpectError(t.status(), absl::StatusCode::kInvalidArgument,
              "tensor conv3d.weight: shape [1, 2, 3, 4, 5] has 5 dimensions; at most 4");
  auto four = OwnedTensor::Create(DType::kF32, {1, 2, 3, 4}, "w");
  ASSERT_TRUE(four.ok()) << four.status();
  EXPECT_EQ(four->bytes(), 4 * 24);
  EXPECT_EQ(four->cview().dim(3), 4);
}

TEST(OwnedTensorCreate, RowsThatAreNotWholeBlocksAreRefused) {
  // [2, 16] Q8_0 holds 32 elements, one block's worth, but no row is a whole block; [3, 16]
  // used to get 0 bytes of storage.
  for (const std::vector<int64_t>& dims : {std::vector<int64_t>{2, 16}, {3, 16}}) {
    auto t = OwnedTensor::Create(DType::kQ8_0, dims, "tensor blk.0.attn_q.weight");
    ExpectError(t.status(), absl::StatusCode::kInvalidArgument,
                "tensor blk.0.attn_q.weight: shape [");
    ExpectError(t.status(), absl::StatusCode::kInvalidArgument,
                "row length 16 is not a multiple of the Q8_0 block size 32");
  }
  auto ok = OwnedTensor::Create(DType::kQ8_0, {3, 64}, "w");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->bytes(), 3 * 2 * 34);
  ExpectError(OwnedTensor::Create(DType::kF32, {4, -1}, "w").status(),
              absl::StatusCode::kInvalidArgument, "w: shape [4, -1] is negative");
  ExpectError(OwnedTensor::Create(DType::kF32, {int64_t{1} << 40, int64_t{1} << 40}, "w").status(),
              absl::StatusCode::kInvalidArgument, "overflows");
}

TEST(OwnedTensorCreate, MoreThanTheMemoryAvailableIsResourceExhausted) {
  // 2^50 f32 = 4 PiB: beyond any machine's memory, so refused before allocating.
  auto t = OwnedTensor::Create(DType::kF32, {int64_t{1} << 25, int64_t{1} << 25},
                               "tensor token_embd.weight");
  ExpectError(t.status(), absl::StatusCode::kResourceExhausted,
              "tensor token_embd.weight: cannot allocate 4503599627370496 bytes");
  ExpectError(t.status(), absl::StatusCode::kResourceExhausted, "of memory are available");
  ExpectError(HostBuffer::Allocate(int64_t{1} << 62, "the KV cache").status(),
              absl::StatusCode::kResourceExhausted, "the KV cache: cannot allocate");
  ExpectError(HostBuffer::Allocate(-1, "x").status(), absl::StatusCode::kInvalidArgument,
              "negative");
  auto small = HostBuffer::Allocate(100, "x");
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->bytes(), 100);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small->data()) % 64, 0u);
  EXPECT_GT(AvailableMemoryBytes(), 0);
}

TEST(OwnedTensorDeathTest, InternalMisuseIsACheckFailure) {
  EXPECT_DEATH(OwnedTensor(DType::kQ8_0, {3, 16}), "block size");
  EXPECT_DEATH(Tensor(nullptr, DType::kF32, {1, 2, 3, 4, 5}), "kMaxRank");
}

}  // namespace
}  // namespace tessera::kernels
