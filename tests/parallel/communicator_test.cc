// The in-process communicator against hand-computed results on 1-4 ranks, the fault-
// injecting wrapper, and the solo communicator's send/recv and stats.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <numeric>
#include <thread>
#include <vector>

#include "parallel/fault_communicator.h"
#include "parallel/inprocess_communicator.h"

namespace tessera::parallel {
namespace {

using kernels::ConstTensor;
using kernels::DType;
using kernels::Tensor;

Tensor F32(std::vector<float>& v) {
  return Tensor(v.data(), DType::kF32, {static_cast<int64_t>(v.size())});
}

// Runs fn(comm, rank) on one thread per rank; returns each rank's status.
std::vector<absl::Status> RunRanks(std::vector<std::unique_ptr<Communicator>>& comms,
                                   const std::function<absl::Status(Communicator&, int)>& fn) {
  std::vector<absl::Status> out(comms.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < comms.size(); ++r) {
    threads.emplace_back([&, r] { out[r] = fn(*comms[r], static_cast<int>(r)); });
  }
  for (std::thread& t : threads) t.join();
  return out;
}

void ExpectAllOk(const std::vector<absl::Status>& s) {
  for (size_t r = 0; r < s.size(); ++r) EXPECT_TRUE(s[r].ok()) << "rank " << r << ": " << s[r];
}

class InProcessTest : public testing::TestWithParam<int> {};

TEST_P(InProcessTest, AllReduceSum) {
  const int n = GetParam();
  auto comms = InProcessCommunicator::MakeGroup(n);
  ExpectAllOk(RunRanks(comms, [&](Communicator& c, int r) {
    EXPECT_EQ(c.rank(), r);
    EXPECT_EQ(c.size(), n);
    std::vector<float> v(7);
    for (int i = 0; i < 7; ++i) v[i] = 10.0f * (r + 1) + i;
    if (absl::Status s = c.AllReduceSum(F32(v)); !s.ok()) return s;
    for (int i = 0; i < 7; ++i) EXPECT_EQ(v[i], 10.0f * n * (n + 1) / 2 + n * i);
    return absl::OkStatus();
  }));
}

TEST_P(InProcessTest, AllGatherAnyDtype) {
  const int n = GetParam();
  auto comms = InProcessCommunicator::MakeGroup(n);
  ExpectAllOk(RunRanks(comms, [&](Communicator& c, int r) {
    std::vector<uint16_t> in(3), out(3 * n, 0xffff);
    for (int i = 0; i < 3; ++i) in[i] = static_cast<uint16_t>(100 * r + i);
    absl::Status s = c.AllGather(Tensor(out.data(), DType::kBF16, {n, 3}),
                                 ConstTensor(in.data(), DType::kBF16, {3}));
    for (int src = 0; src < n; ++src) {
      for (int i = 0; i < 3; ++i) EXPECT_EQ(out[3 * src + i], 100 * src + i);
    }
    return s;
  }));
}

TEST_P(InProcessTest, ReduceScatterSum) {
  const int n = GetParam();
  auto comms = InProcessCommunicator::MakeGroup(n);
  ExpectAllOk(RunRanks(comms, [&](Communicator& c, int r) {
    std::vector<float> in(3 * n), out(3);
    for (int d = 0; d < n; ++d) {
      for (int i = 0; i < 3; ++i) in[3 * d + i] = r + 10.0f * d + 100.0f * i;
    }
    absl::Status s = c.ReduceScatterSum(F32(out), ConstTensor(in.data(), DType::kF32, {n, 3}));
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(out[i], n * (n - 1) / 2.0f + n * (10.0f * r + 100.0f * i));
    }
    return s;
  }));
}

// Each rank sends count(src, dst) elements to each dst, valued 1000·src + 100·dst + k.
void CheckAllToAllV(int n, const std::function<int64_t(int, int)>& count) {
  auto comms = InProcessCommunicator::MakeGroup(n);
  ExpectAllOk(RunRanks(comms, [&](Communicator& c, int r) {
    std::vector<int64_t> send(n), recv(n);
    std::vector<float> in, out;
    for (int d = 0; d < n; ++d) {
      send[d] = count(r, d);
      recv[d] = count(d, r);
      for (int64_t k = 0; k < send[d]; ++k) in.push_back(1000.0f * r + 100.0f * d + k);
    }
    out.assign(std::accumulate(recv.begin(), recv.end(), int64_t{0}) + 1, -1.0f);  // +1: a guard
    in.push_back(-2.0f);                                                           // never sent
    absl::Status s = c.AllToAllV(F32(out), recv,
                                 ConstTensor(in.data(), DType::kF32, {int64_t(in.size())}), send);
    size_t i = 0;
    for (int src = 0; src < n; ++src) {
      for (int64_t k = 0; k < recv[src]; ++k, ++i)
        EXPECT_EQ(out[i], 1000.0f * src + 100.0f * r + k);
    }
    EXPECT_EQ(out.back(), -1.0f);
    return s;
  }));
}

TEST_P(InProcessTest, AllToAllVUnevenZeroAndOneReceiver) {
  const int n = GetParam();
  CheckAllToAllV(n, [](int s, int d) { return (s + 2 * d) % 3; });     // uneven, some zero
  CheckAllToAllV(n, [](int s, int d) { return d == 0 ? s + 2 : 0; });  // rank 0 gets it all
  CheckAllToAllV(n, [](int, int) { return 0; });                       // nothing at all
}

TEST_P(InProcessTest, BroadcastBytesOfAnyDtype) {
  const int n = GetParam();
  auto comms = InProcessCommunicator::MakeGroup(n);
  ExpectAllOk(RunRanks(comms, [&](Communicator& c, int r) {
    for (int root : {0, n - 1}) {
      std::vector<uint8_t> q(68, static_cast<uint8_t>(r));  // two Q8_0 blocks: 64 elements
      if (r == root) std::iota(q.begin(), q.end(), uint8_t{7});
      if (absl::Status s = c.Broadcast(Tensor(q.data(), DType::kQ8_0, {64}), root); !s.ok())
        return s;
      for (int i = 0; i < 68; ++i) EXPECT_EQ(q[i], 7 + i);
      std::vector<uint16_t> h(5, static_cast<uint16_t>(r == root ? 0xabcd : 0));
      if (absl::Status s = c.Broadcast(Tensor(h.data(), DType::kF16, {5}), root); !s.ok()) return s;
      for (uint16_t v : h) EXPECT_EQ(v, 0xabcd);
    }
    return c.Barrier();
  }));
}

TEST_P(InProcessTest, GatherReachesTheRootOnly) {
  const int n = GetParam();
  auto comms = InProcessCommunicator::MakeGroup(n);
  ExpectAllOk(RunRanks(comms, [&](Communicator& c, int r) {
    for (int root : {0, n - 1}) {
      const int32_t mine[2] = {r, 100 + r};
      std::vector<int32_t> out(2 * n, -1);
      if (absl::Status s = c.Gather(Tensor(out.data(), DType::kI32, {n, 2}),
                                    ConstTensor(mine, DType::kI32, {2}), root);
          !s.ok()) {
        return s;
      }
      for (int src = 0; src < n; ++src) {
        EXPECT_EQ(out[2 * src], r == root ? src : -1);
        EXPECT_EQ(out[2 * src + 1], r == root ? 100 + src : -1);
      }
      // Bytes: the root's `out` only needs room; other ranks may pass none.
      const uint8_t b = static_cast<uint8_t>(r);
      std::vector<uint8_t> bytes(r == root ? n : 0);
      if (absl::Status s = c.Gather(Tensor(bytes.data(), DType::kU8, {r == root ? n : 0}),
                                    ConstTensor(&b, DType::kU8, {1}), root);
          !s.ok()) {
        return s;
      }
      for (int src = 0; r == root && src < n; ++src) EXPECT_EQ(bytes[src], src);
    }
    return c.Barrier();
  }));
}

TEST_P(InProcessTest, RingSendRecvOverlapsAndKeepsOrder) {
  const int n = GetParam();
  auto comms = InProcessCommunicator::MakeGroup(n);
  ExpectAllOk(RunRanks(comms, [&](Communicator& c, int r) {
    const int next = (r + 1) % n, prev = (r + n - 1) % n;
    std::vector<float> block(4, static_cast<float>(r)), incoming(4);
    for (int step = 0; step < n; ++step) {
      // Post two exchanges before waiting on either: order per pair is kept.
      std::vector<float> second(4, 100.0f + r), second_in(4);
      auto a = c.StartSendRecv(F32(block), next, F32(incoming), prev);
      if (!a.ok()) return a.status();
      auto b = c.StartSendRecv(F32(second), next, F32(second_in), prev);
      if (!b.ok()) return b.status();
      if (absl::Status s = (*b)->Wait(); !s.ok()) return s;  // waits on b first, still in order
      if (absl::Status s = (*a)->Wait(); !s.ok()) return s;
      EXPECT_EQ(second_in[0], 100.0f + prev);
      block = incoming;
      EXPECT_EQ(block[3], static_cast<float>((r + n - 1 - step + n) % n));
    }
    EXPECT_EQ(block[0], static_cast<float>(r));  // back home after n steps
    return absl::OkStatus();
  }));
}

TEST_P(InProcessTest, StatsCountCallsAndBytes) {
  const int n = GetParam();
  auto comms = InProcessCommunicator::MakeGroup(n);
  ExpectAllOk(RunRanks(comms, [&](Communicator& c, int r) {
    std::vector<float> v(10), g(10 * n), rs(10 / 2);
    std::vector<float> rsin(5 * n);
    for (int i = 0; i < 3; ++i) {
      if (absl::Status s = c.AllReduceSum(F32(v)); !s.ok()) return s;
    }
    if (absl::Status s = c.AllGather(F32(g), F32(v)); !s.ok()) return s;
    if (absl::Status s = c.ReduceScatterSum(F32(rs), F32(rsin)); !s.ok()) return s;
    if (absl::Status s = c.Broadcast(F32(v), 0); !s.ok()) return s;
    if (absl::Status s = c.Barrier(); !s.ok()) return s;
    const CollectiveStats st = c.stats();
    EXPECT_EQ(st[CollectiveKind::kAllReduce].calls, 3);
    EXPECT_EQ(st[CollectiveKind::kAllReduce].bytes, 3 * 40);
    EXPECT_EQ(st[CollectiveKind::kAllGather].calls, 1);
    EXPECT_EQ(st[CollectiveKind::kAllGather].bytes, 40);
    EXPECT_EQ(st[CollectiveKind::kReduceScatter].bytes, 20 * n);
    EXPECT_EQ(st[CollectiveKind::kBroadcast].calls, 1);
    EXPECT_EQ(st[CollectiveKind::kBarrier].calls, 1);
    EXPECT_EQ(st[CollectiveKind::kAllToAllV].calls, 0);
    EXPECT_EQ(st.total_bytes(), 120 + 40 + 20 * n + 40);
    return absl::OkStatus();
  }));
}

INSTANTIATE_TEST_SUITE_P(Ranks, InProcessTest, testing::Values(1, 2, 3, 4));

TEST(InProcessErrors, MismatchedCallsFailOnEveryRankInsteadOfHanging) {
  auto comms = InProcessCommunicator::MakeGroup(2);
  std::vector<absl::Status> s = RunRanks(comms, [](Communicator& c, int r) {
    std::vector<float> v(4);
    return r == 0 ? c.AllReduceSum(F32(v)) : c.Barrier();
  });
  for (const absl::Status& x : s) {
    EXPECT_EQ(x.code(), absl::StatusCode::kInvalidArgument) << x;
    EXPECT_NE(x.message().find("does not match across ranks"), absl::string_view::npos) << x;
  }
  // Mismatched all-to-all-v counts: rank 0 sends 2 to rank 1, which expects 3.
  comms = InProcessCommunicator::MakeGroup(2);
  s = RunRanks(comms, [](Communicator& c, int r) {
    std::vector<float> in(4), out(4);
    const std::vector<int64_t> send =
        r == 0 ? std::vector<int64_t>{1, 2} : std::vector<int64_t>{2, 1};
    const std::vector<int64_t> recv =
        r == 0 ? std::vector<int64_t>{1, 2} : std::vector<int64_t>{3, 1};
    return c.AllToAllV(F32(out), recv, F32(in), send);
  });
  EXPECT_EQ(s[1].code(), absl::StatusCode::kInvalidArgument) << s[1];
}

TEST(InProcessErrors, BadArgumentsAreStatuses) {
  auto comms = InProcessCommunicator::MakeGroup(1);
  Communicator& c = *comms[0];
  std::vector<float> v(4);
  std::vector<uint16_t> h(4);
  const std::vector<int64_t> two = {1, 1}, one = {4};
  EXPECT_EQ(c.AllReduceSum(Tensor(h.data(), DType::kF16, {4})).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.AllToAllV(F32(v), two, F32(v), two).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.AllToAllV(F32(v), one, F32(v), std::vector<int64_t>{5}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.Broadcast(F32(v), 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.Broadcast(Tensor(h.data(), DType::kQ8_0, {4}), 0).code(),
            absl::StatusCode::kInvalidArgument);  // not a whole block
  EXPECT_EQ(c.StartSendRecv(F32(v), 1, F32(v), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.stats().total_bytes(), 0);  // refused calls are not counted
}

// (c) One rank dies: the others get DeadlineExceeded naming it within the timeout, and
// every later call fails at once.
TEST(FaultTest, DeadRankGivesDeadlineExceededNotAHang) {
  constexpr absl::Duration kTimeout = absl::Milliseconds(500);
  for (int n : {2, 3, 4}) {
    auto base = InProcessCommunicator::MakeGroup(n, kTimeout);
    std::vector<std::unique_ptr<Communicator>> comms;
    for (auto& b : base)
      comms.push_back(std::make_unique<FaultInjectingCommunicator>(std::move(b)));
    auto* victim = static_cast<FaultInjectingCommunicator*>(comms[1].get());
    victim->DieAtCall(3);
    std::vector<double> elapsed(n);
    std::vector<absl::Status> later(n);
    std::vector<absl::Status> s = RunRanks(comms, [&](Communicator& c, int r) {
      std::vector<float> v(2304, 1.0f);
      for (int call = 1; call <= 2; ++call) {
        if (absl::Status st = c.AllReduceSum(F32(v)); !st.ok()) return st;
      }
      const auto t0 = std::chrono::steady_clock::now();
      absl::Status st = c.AllReduceSum(F32(v));
      elapsed[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const auto t1 = std::chrono::steady_clock::now();
      later[r] = c.Barrier();
      EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count(), 0.1);
      return st;
    });
    for (int r = 0; r < n; ++r) {
      SCOPED_TRACE(testing::Message() << n << " ranks, rank " << r);
      if (r == 1) {
        EXPECT_EQ(s[r].code(), absl::StatusCode::kUnavailable) << s[r];
        continue;
      }
      EXPECT_EQ(s[r].code(), absl::StatusCode::kDeadlineExceeded) << s[r];
      EXPECT_NE(s[r].message().find("all-reduce of 2304 F32 elements"), absl::string_view::npos)
          << s[r];
      EXPECT_NE(s[r].message().find("rank 1 did not arrive"), absl::string_view::npos) << s[r];
      EXPECT_LT(elapsed[r], absl::ToDoubleSeconds(kTimeout) + 1.0);
      EXPECT_EQ(later[r].code(), absl::StatusCode::kDeadlineExceeded) << later[r];
    }
  }
}

TEST(FaultTest, FailedCallAndStragglerDelay) {
  auto base = InProcessCommunicator::MakeGroup(2, absl::Milliseconds(2000));
  FaultInjectingCommunicator r0(std::move(base[0])), r1(std::move(base[1]));
  r1.DelayCall(1, absl::Milliseconds(100));  // a straggler within the timeout: fine
  r0.FailCall(2, absl::InternalError("injected"));
  std::vector<float> a(3, 1.0f), b(3, 2.0f);
  absl::Status s0, s1, s0b;
  std::thread t([&] { s1 = r1.AllReduceSum(F32(b)); });
  s0 = r0.AllReduceSum(F32(a));
  t.join();
  EXPECT_TRUE(s0.ok()) << s0;
  EXPECT_TRUE(s1.ok()) << s1;
  EXPECT_EQ(a[0], 3.0f);
  EXPECT_EQ(b[2], 3.0f);
  s0b = r0.AllReduceSum(F32(a));  // call 2 on rank 0 fails without reaching the group
  EXPECT_EQ(s0b.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(r0.calls(), 2);
  EXPECT_EQ(r0.stats()[CollectiveKind::kAllReduce].calls, 1);  // forwarded from the group
}

TEST(FaultTest, MissingSendTimesOutTheReceive) {
  auto comms = InProcessCommunicator::MakeGroup(2, absl::Milliseconds(200));
  std::vector<float> in(4), out(4);
  auto p = comms[0]->StartSendRecv(F32(in), 1, F32(out), 1);  // rank 1 never sends
  ASSERT_TRUE(p.ok());
  absl::Status s = (*p)->Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_NE(s.message().find("from rank 1"), absl::string_view::npos) << s;
}

TEST(SoloTest, SendRecvAndStats) {
  auto c = MakeSoloCommunicator();
  std::vector<float> a = {1, 2, 3}, b(3);
  ASSERT_TRUE(c->SendRecv(F32(a), 0, F32(b), 0).ok());
  EXPECT_EQ(b, a);
  EXPECT_FALSE(c->SendRecv(F32(a), 1, F32(b), 0).ok());
  ASSERT_TRUE(c->AllReduceSum(F32(a)).ok());
  EXPECT_EQ(c->stats()[CollectiveKind::kAllReduce].bytes, 12);
  EXPECT_EQ(c->stats()[CollectiveKind::kSend].calls, 1);
}

}  // namespace
}  // namespace tessera::parallel
