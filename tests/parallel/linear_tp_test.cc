// The core tensor-parallel test: ColumnParallelLinear then RowParallelLinear on 1, 2 and 4
// in-process ranks, each holding only its own weight shard, equals one plain MatMul pair.
#include <gtest/gtest.h>

#include "tests/kernels/kernel_test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "kernels/dequant.h"
#include "kernels/matmul.h"
#include "parallel/inprocess_communicator.h"
#include "parallel/linear.h"

namespace tessera::parallel {
namespace {

using kernels::ConstTensor;
using kernels::DType;
using kernels::OwnedTensor;
using kernels::Tensor;

std::vector<float> Random(int64_t n, uint32_t seed) {
  return kernels::testing::RandomFloats(n, seed);
}

// `v` [rows, cols] stored as `type` (F32 or Q8_0).
OwnedTensor Make(DType type, int64_t rows, int64_t cols, const std::vector<float>& v) {
  return kernels::testing::Stored(type, {rows, cols}, v.data());
}

// Rows [r0, r1) and columns [c0, c1) of a stored [rows, cols] matrix, copied byte for byte
// (for quantized types the columns must fall on block boundaries).
OwnedTensor Slice(const OwnedTensor& full, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  const DType type = full.cview().type;
  const int64_t cols = full.cview().dim(1), block = kernels::Info(type).block_elems;
  EXPECT_EQ(c0 % block, 0);
  EXPECT_EQ(c1 % block, 0);
  OwnedTensor s(type, {r1 - r0, c1 - c0});
  const int64_t row_bytes = *kernels::BytesFor(type, cols), off = *kernels::BytesFor(type, c0),
                len = *kernels::BytesFor(type, c1 - c0);
  for (int64_t r = r0; r < r1; ++r) {
    std::memcpy(s.as<uint8_t>() + (r - r0) * len, full.as<uint8_t>() + r * row_bytes + off, len);
  }
  return s;
}

OwnedTensor F32(const std::vector<float>& v) {
  OwnedTensor t(DType::kF32, {static_cast<int64_t>(v.size())});
  std::memcpy(t.as<float>(), v.data(), 4 * v.size());
  return t;
}

// out = (x · W1ᵀ + b1) · W2ᵀ + b2 with W1 [F, H] and W2 [H, F] sharded over `tp` ranks:
// W1 by rows (column-parallel), W2 by columns (row-parallel). Every rank's result must
// equal the one-process MatMul pair.
void CheckMlp(int tp, DType type, bool bias) {
  SCOPED_TRACE(testing::Message() << "tp " << tp << " " << kernels::Name(type)
                                  << (bias ? " with bias" : ""));
  constexpr int64_t T = 5, H = 64, F = 128;
  const std::vector<float> x = Random(T * H, 1), w1 = Random(F * H, 2), w2 = Random(H * F, 3),
                           b1 = Random(F, 4), b2 = Random(H, 5);
  const OwnedTensor W1 = Make(type, F, H, w1), W2 = Make(type, H, F, w2);
  const ConstTensor X(x.data(), DType::kF32, {T, H});

  std::vector<float> mid(T * F), ref(T * H);
  kernels::MatMul(Tensor(mid.data(), DType::kF32, {T, F}), X, W1.cview());
  if (bias)
    AddBias(Tensor(mid.data(), DType::kF32, {T, F}), ConstTensor(b1.data(), DType::kF32, {F}));
  kernels::MatMul(Tensor(ref.data(), DType::kF32, {T, H}),
                  ConstTensor(mid.data(), DType::kF32, {T, F}), W2.cview());
  if (bias)
    AddBias(Tensor(ref.data(), DType::kF32, {T, H}), ConstTensor(b2.data(), DType::kF32, {H}));
  float scale = 0;
  for (float v : ref) scale = std::max(scale, std::fabs(v));

  std::vector<std::unique_ptr<Communicator>> comms = InProcessCommunicator::MakeGroup(tp);
  std::vector<std::vector<float>> outs(tp, std::vector<float>(T * H));
  std::vector<absl::Status> statuses(tp);
  std::vector<std::thread> threads;
  const int64_t Fl = F / tp;
  for (int r = 0; r < tp; ++r) {
    threads.emplace_back([&, r] {
      std::optional<OwnedTensor> cb, rb;
      if (bias) {
        cb = F32(std::vector<float>(b1.begin() + r * Fl, b1.begin() + (r + 1) * Fl));
        rb = F32(b2);
      }
      const ColumnParallelLinear up(Slice(W1, r * Fl, (r + 1) * Fl, 0, H), std::move(cb));
      const RowParallelLinear down(Slice(W2, 0, H, r * Fl, (r + 1) * Fl), std::move(rb),
                                   comms[r].get());
      std::vector<float> local(T * Fl);
      up.Forward(Tensor(local.data(), DType::kF32, {T, Fl}), X);
      statuses[r] = down.Forward(Tensor(outs[r].data(), DType::kF32, {T, H}),
                                 ConstTensor(local.data(), DType::kF32, {T, Fl}));
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < tp; ++r) {
    ASSERT_TRUE(statuses[r].ok()) << statuses[r];
    float worst = 0;
    for (int64_t i = 0; i < T * H; ++i) worst = std::max(worst, std::fabs(outs[r][i] - ref[i]));
    EXPECT_LE(worst, 1e-5f * scale) << "rank " << r << ", output scale " << scale;
    // Every rank gets the same all-reduced bits.
    EXPECT_EQ(0, std::memcmp(outs[r].data(), outs[0].data(), 4 * T * H)) << "rank " << r;
  }
  EXPECT_EQ(comms[0]->stats()[CollectiveKind::kAllReduce].calls, 1);
  EXPECT_EQ(comms[0]->stats()[CollectiveKind::kAllReduce].bytes, 4 * T * H);
}

TEST(LinearTpTest, ColumnThenRowEqualsOneMatMulPairF32) {
  for (int tp : {1, 2, 4}) {
    CheckMlp(tp, DType::kF32, false);
    CheckMlp(tp, DType::kF32, true);
  }
}

// F / tp = 128 / 4 = 32: the row-parallel weight's column split stays on Q8_0 blocks.
TEST(LinearTpTest, ColumnThenRowEqualsOneMatMulPairQ8_0) {
  for (int tp : {1, 2, 4}) {
    CheckMlp(tp, DType::kQ8_0, false);
    CheckMlp(tp, DType::kQ8_0, true);
  }
}

}  // namespace
}  // namespace tessera::parallel
