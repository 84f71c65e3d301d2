// Ring attention on in-process groups of 2, 3 and 4 ranks (one thread per rank) against
// single-rank attention over the whole sequence: lengths that do and do not divide by
// 2·cp (and shorter than 2·cp), GQA, a sliding window, document masks; that invisible
// pieces are skipped; that every step posts its transfer before computing and waits only
// after (the order of a recording communicator's calls); and a dead peer.
#include "parallel/ring_attention.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "parallel/inprocess_communicator.h"
#include "ring_case.h"

namespace tessera::parallel {
namespace {

using testing::MakeRingData;
using testing::RingCase;
using testing::RunRingShare;

// Runs `c` on an in-process group of `cp` ranks; returns each rank's error.
std::vector<double> RunGroup(int cp, const RingCase& c, std::vector<std::vector<RingStep>>* steps = nullptr) {
  const testing::RingData data = MakeRingData(c);
  auto group = InProcessCommunicator::MakeGroup(cp);
  std::vector<double> err(cp);
  std::vector<absl::Status> status(cp);
  if (steps) steps->assign(cp, {});
  std::vector<std::thread> threads;
  for (int r = 0; r < cp; ++r) {
    threads.emplace_back([&, r] {
      err[r] = RunRingShare(*group[r], c, data, &status[r], steps ? &(*steps)[r] : nullptr);
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < cp; ++r) EXPECT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];
  return err;
}

TEST(ZigzagTest, ChunksCoverTheSequenceOnce) {
  for (int cp : {1, 2, 3, 4}) {
    for (int64_t L : {0, 1, 5, 8, 16, 17, 100, 16384}) {
      std::vector<int> seen(L, 0);
      int64_t most = 0, least = L;
      for (int r = 0; r < cp; ++r) {
        const ZigzagShard s = Zigzag(L, cp, r);
        for (int i = 0; i < 2; ++i) {
          for (int64_t p = s.begin[i]; p < s.end[i]; ++p) ++seen[p];
        }
        EXPECT_EQ(s.begin[0], r == 0 ? 0 : Zigzag(L, cp, r - 1).end[0]);
        most = std::max(most, s.size()), least = std::min(least, s.size());
      }
      EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), L) << "cp " << cp << " L " << L;
      EXPECT_LE(most - least, 2) << "balanced";
      EXPECT_EQ(ZigzagCapacity(L, cp), most);
    }
  }
}

TEST(RingAttentionTest, EqualsSingleRankAttention) {
  uint32_t seed = 1;
  for (int cp : {2, 3, 4}) {
    for (int64_t L : {int64_t{2} * cp * 8, int64_t{2} * cp * 8 + 5, int64_t{97}, int64_t{cp + 1}}) {
      for (int64_t window : {int64_t{0}, int64_t{9}}) {
        for (bool docs : {false, true}) {
          RingCase c{.length = L, .window = window, .seed = seed++};
          if (docs) c.doc_starts = {L / 3, L / 3 + 1, (2 * L) / 3};
          const std::vector<double> err = RunGroup(cp, c);
          for (int r = 0; r < cp; ++r) {
            EXPECT_LT(err[r], 1e-5) << "cp " << cp << " L " << L << " window " << window
                                    << " docs " << docs << " rank " << r;
          }
        }
      }
    }
  }
}

TEST(RingAttentionTest, MultiHeadAndMultiQuery) {
  for (auto [hq, hkv] : std::vector<std::pair<int64_t, int64_t>>{{4, 4}, {8, 1}}) {
    const std::vector<double> err = RunGroup(3, {.length = 61, .hq = hq, .hkv = hkv, .d = 8, .seed = 7});
    for (double e : err) EXPECT_LT(e, 1e-5) << hq << "/" << hkv;
  }
}

TEST(RingAttentionTest, SkipsPiecesNoQueryCanSee) {
  // cp 2, 64 tokens: rank 0 holds chunks 0 and 3 (positions 0..15, 48..63), rank 1 chunks 1
  // and 2 (16..47, one run of consecutive positions). At step 1 rank 0 holds rank 1's block:
  // chunk 0's queries cannot see it (the future), chunk 3's can; rank 1 holds rank 0's:
  // chunk 0 is in the past, chunk 3 in the future of all its queries.
  std::vector<std::vector<RingStep>> steps;
  RunGroup(2, {.length = 64, .seed = 3}, &steps);
  ASSERT_EQ(steps[0].size(), 2u);
  EXPECT_EQ(steps[0][0].pieces, 3);  // own block: chunk 0 cannot see chunk 3
  EXPECT_EQ(steps[0][0].skipped, 1);
  EXPECT_EQ(steps[0][1].pieces, 1);
  EXPECT_EQ(steps[0][1].skipped, 1);
  EXPECT_EQ(steps[1][1].pieces, 1);
  EXPECT_EQ(steps[1][1].skipped, 1);
  // A 4-token window: chunk 3's queries (48..63) see nothing of chunk 0 (0..15).
  RunGroup(2, {.length = 64, .window = 4, .seed = 3}, &steps);
  EXPECT_EQ(steps[0][0].pieces, 2);
  EXPECT_EQ(steps[0][0].skipped, 2);
  // Two documents split at 32: rank 1's block is two runs (16..31 and 32..47); chunk 3 (the
  // second document) sees only the second, chunk 0 neither.
  RunGroup(2, {.length = 64, .doc_starts = {32}, .seed = 3}, &steps);
  EXPECT_EQ(steps[0][1].pieces, 1);
  EXPECT_EQ(steps[0][1].skipped, 3);
}

// Forwards to an in-process communicator and records, in the ring's trace, when transfers
// are posted and waited for (step = the k-th exchange).
class RecordingCommunicator final : public Communicator {
 public:
  RecordingCommunicator(std::unique_ptr<Communicator> inner, RingTrace* trace)
      : inner_(std::move(inner)), trace_(trace) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  absl::Status AllReduceSum(kernels::Tensor d) override { return inner_->AllReduceSum(d); }
  absl::Status AllGather(kernels::Tensor o, kernels::ConstTensor i) override { return inner_->AllGather(o, i); }
  absl::Status ReduceScatterSum(kernels::Tensor o, kernels::ConstTensor i) override {
    return inner_->ReduceScatterSum(o, i);
  }
  absl::Status AllToAllV(kernels::Tensor o, std::span<const int64_t> rc, kernels::ConstTensor i,
                         std::span<const int64_t> sc) override {
    return inner_->AllToAllV(o, rc, i, sc);
  }
  absl::Status Gather(kernels::Tensor o, kernels::ConstTensor i, int root) override {
    return inner_->Gather(o, i, root);
  }
  absl::Status Broadcast(kernels::Tensor d, int root) override { return inner_->Broadcast(d, root); }
  absl::Status Barrier() override { return inner_->Barrier(); }
  absl::StatusOr<std::unique_ptr<PendingSendRecv>> StartSendRecv(kernels::ConstTensor send, int dst,
                                                                 kernels::Tensor recv, int src) override {
    auto p = inner_->StartSendRecv(send, dst, recv, src);
    if (!p.ok()) return p;
    const int step = exchanges_++;
    trace_->events.push_back({step, RingEvent::kPosted});
    return std::unique_ptr<PendingSendRecv>(new Recorded(std::move(*p), trace_, step));
  }

 private:
  class Recorded final : public PendingSendRecv {
   public:
    Recorded(std::unique_ptr<PendingSendRecv> p, RingTrace* t, int step) : p_(std::move(p)), t_(t), step_(step) {}
    absl::Status Wait() override {
      t_->events.push_back({step_, RingEvent::kWaitBegin});
      absl::Status s = p_->Wait();
      t_->events.push_back({step_, RingEvent::kWaitEnd});
      return s;
    }

   private:
    std::unique_ptr<PendingSendRecv> p_;
    RingTrace* t_;
    int step_;
  };
  std::unique_ptr<Communicator> inner_;
  RingTrace* trace_;
  int exchanges_ = 0;
};

TEST(RingAttentionTest, TransfersArePostedBeforeComputeAndWaitedAfter) {
  for (int cp : {2, 4}) {
    const RingCase c{.length = 200, .seed = 11};
    const testing::RingData data = MakeRingData(c);
    auto group = InProcessCommunicator::MakeGroup(cp);
    std::vector<RingTrace> traces(cp);
    std::vector<std::thread> threads;
    for (int r = 0; r < cp; ++r) {
      threads.emplace_back([&, r] {
        RecordingCommunicator rec(std::move(group[r]), &traces[r]);
        absl::Status st;
        EXPECT_LT(RunRingShare(rec, c, data, &st, nullptr, &traces[r]), 1e-5);
        EXPECT_TRUE(st.ok()) << st;
      });
    }
    for (auto& t : threads) t.join();
    for (int r = 0; r < cp; ++r) {
      const auto& ev = traces[r].events;
      auto index = [&](int step, RingEvent e) {
        auto it = std::find(ev.begin(), ev.end(), std::pair{step, e});
        return it == ev.end() ? -1 : static_cast<int>(it - ev.begin());
      };
      for (int s = 0; s < cp; ++s) {
        const int begin = index(s, RingEvent::kComputeBegin), end = index(s, RingEvent::kComputeEnd);
        ASSERT_GE(begin, 0);
        ASSERT_GT(end, begin);
        if (s + 1 == cp) {  // the last step has nothing left to pass on
          EXPECT_EQ(index(s, RingEvent::kPosted), -1);
          continue;
        }
        EXPECT_GE(index(s, RingEvent::kPosted), 0) << "rank " << r << " step " << s;
        EXPECT_LT(index(s, RingEvent::kPosted), begin) << "rank " << r << " step " << s;
        EXPECT_GT(index(s, RingEvent::kWaitBegin), end) << "rank " << r << " step " << s;
        EXPECT_GT(index(s, RingEvent::kWaitEnd), index(s, RingEvent::kWaitBegin));
        EXPECT_LT(index(s, RingEvent::kWaitEnd), index(s + 1, RingEvent::kComputeBegin));
      }
    }
  }
}

TEST(RingAttentionTest, DeadPeerIsAnErrorNotAHang) {
  // Rank 2 of 3 never calls: ranks 0 and 1 get the communicator's deadline error.
  const RingCase c{.length = 60, .seed = 5};
  const testing::RingData data = MakeRingData(c);
  auto group = InProcessCommunicator::MakeGroup(3, absl::Milliseconds(300));
  std::vector<absl::Status> status(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] { RunRingShare(*group[r], c, data, &status[r]); });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(status[r].code(), absl::StatusCode::kDeadlineExceeded) << r << ": " << status[r];
  }
}

TEST(RingAttentionTest, RefusesInconsistentShapes) {
  auto solo = MakeSoloCommunicator();
  std::vector<float> q(4 * 16), k(4 * 8), v(4 * 8), out(4 * 16);
  std::vector<int32_t> pos = {0, 1, 2, 3};
  RingAttentionArgs a{.q = kernels::ConstTensor(q.data(), kernels::DType::kF32, {4, 16}),
                      .k = kernels::ConstTensor(k.data(), kernels::DType::kF32, {4, 8}),
                      .v = kernels::ConstTensor(v.data(), kernels::DType::kF32, {4, 8}),
                      .positions = pos, .head_dim = 8, .capacity = 3};
  kernels::Tensor o(out.data(), kernels::DType::kF32, {4, 16});
  absl::Status s = RingAttention(*solo, o, nullptr, a);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("capacity 3"), std::string::npos) << s;
  a.capacity = 4;
  a.head_dim = 5;
  EXPECT_EQ(RingAttention(*solo, o, nullptr, a).code(), absl::StatusCode::kInvalidArgument);
  a.head_dim = 8;
  EXPECT_TRUE(RingAttention(*solo, o, nullptr, a).ok());
}

}  // namespace
}  // namespace tessera::parallel
