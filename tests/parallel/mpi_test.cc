// MpiCommunicator across real processes. Launched by ctest through mpirun (see
// CMakeLists.txt); not a gtest binary, since every rank checks its own results:
//
//   mpi_test collectives   every collective on every rank against hand-computed values,
//                          the stats counters, send/recv around a ring, and the groups of
//                          every Topology layout of this world. Exit 0 on every rank, and
//                          rank 0 prints "mpi_test collectives: PASS on N ranks".
//   mpi_test killed        rank 1 SIGKILLs itself mid-run; rank 0's next all-reduce must
//                          return DeadlineExceeded within the timeout (+1 s). Rank 0 prints
//                          "mpi_test killed: PASS ..." (ctest matches that line, since
//                          mpirun reports the dead rank) and leaves without MPI_Finalize,
//                          which could wait for the dead peer.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "parallel/mpi_communicator.h"
#include "parallel/topology.h"

namespace tessera::parallel {
namespace {

using kernels::ConstTensor;
using kernels::DType;
using kernels::Tensor;

int g_rank = 0;
int g_failures = 0;

#define CHECK_TRUE(cond, ...)                                                                \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      ++g_failures;                                                                          \
      std::fprintf(stderr, "rank %d: %s:%d: check failed: %s\n", g_rank, __FILE__, __LINE__, \
                   #cond);                                                                   \
    }                                                                                        \
  } while (0)
#define CHECK_OK(expr)                                                         \
  do {                                                                         \
    const absl::Status s_ = (expr);                                            \
    if (!s_.ok()) {                                                            \
      ++g_failures;                                                            \
      std::fprintf(stderr, "rank %d: %s:%d: %s\n", g_rank, __FILE__, __LINE__, \
                   s_.ToString().c_str());                                     \
    }                                                                          \
  } while (0)

Tensor F32(std::vector<float>& v) {
  return Tensor(v.data(), DType::kF32, {static_cast<int64_t>(v.size())});
}

// The in-process tests' cases, on a real communicator of any size.
void CheckCollectives(MpiCommunicator& c) {
  const int n = c.size(), r = c.rank();
  {  // all-reduce
    std::vector<float> v(7);
    for (int i = 0; i < 7; ++i) v[i] = 10.0f * (r + 1) + i;
    CHECK_OK(c.AllReduceSum(F32(v)));
    for (int i = 0; i < 7; ++i) CHECK_TRUE(v[i] == 10.0f * n * (n + 1) / 2 + n * i);
  }
  {  // all-gather of bf16 bits
    std::vector<uint16_t> in(3), out(3 * n);
    for (int i = 0; i < 3; ++i) in[i] = static_cast<uint16_t>(100 * r + i);
    CHECK_OK(c.AllGather(Tensor(out.data(), DType::kBF16, {n, 3}),
                         ConstTensor(in.data(), DType::kBF16, {3})));
    for (int s = 0; s < n; ++s) {
      for (int i = 0; i < 3; ++i) CHECK_TRUE(out[3 * s + i] == 100 * s + i);
    }
  }
  {  // reduce-scatter
    std::vector<float> in(3 * n), out(3);
    for (int d = 0; d < n; ++d) {
      for (int i = 0; i < 3; ++i) in[3 * d + i] = r + 10.0f * d + 100.0f * i;
    }
    CHECK_OK(c.ReduceScatterSum(F32(out), ConstTensor(in.data(), DType::kF32, {n, 3})));
    for (int i = 0; i < 3; ++i)
      CHECK_TRUE(out[i] == n * (n - 1) / 2.0f + n * (10.0f * r + 100.0f * i));
  }
  // all-to-all-v: uneven with zeros, one receiver, nothing at all.
  for (int pattern = 0; pattern < 3; ++pattern) {
    auto count = [&](int s, int d) -> int64_t {
      if (pattern == 0) return (s + 2 * d) % 3;
      if (pattern == 1) return d == 0 ? s + 2 : 0;
      return 0;
    };
    std::vector<int64_t> send(n), recv(n);
    std::vector<float> in;
    for (int d = 0; d < n; ++d) {
      send[d] = count(r, d);
      recv[d] = count(d, r);
      for (int64_t k = 0; k < send[d]; ++k) in.push_back(1000.0f * r + 100.0f * d + k);
    }
    in.push_back(-2.0f);
    std::vector<float> out(std::accumulate(recv.begin(), recv.end(), int64_t{0}) + 1, -1.0f);
    CHECK_OK(c.AllToAllV(F32(out), recv, F32(in), send));
    size_t i = 0;
    for (int s = 0; s < n; ++s) {
      for (int64_t k = 0; k < recv[s]; ++k, ++i) CHECK_TRUE(out[i] == 1000.0f * s + 100.0f * r + k);
    }
    CHECK_TRUE(out.back() == -1.0f);
  }
  {  // all-to-all-v of Q8_0 blocks (counts in elements, whole blocks)
    std::vector<int64_t> send(n, 32), recv(n, 32);
    std::vector<uint8_t> in(34 * n), out(34 * n);
    for (int d = 0; d < n; ++d) std::memset(in.data() + 34 * d, 16 * r + d, 34);
    CHECK_OK(c.AllToAllV(Tensor(out.data(), DType::kQ8_0, {32 * n}), recv,
                         ConstTensor(in.data(), DType::kQ8_0, {32 * n}), send));
    for (int s = 0; s < n; ++s) CHECK_TRUE(out[34 * s + 33] == 16 * s + r);
  }
  for (int root : {0, n - 1}) {  // broadcast of bytes
    std::vector<uint8_t> q(68, static_cast<uint8_t>(r));
    if (r == root) std::iota(q.begin(), q.end(), uint8_t{7});
    CHECK_OK(c.Broadcast(Tensor(q.data(), DType::kQ8_0, {64}), root));
    for (int i = 0; i < 68; ++i) CHECK_TRUE(q[i] == 7 + i);
  }
  for (int root : {0, n - 1}) {  // gather of i32 to one rank; others' out untouched
    const int32_t mine[3] = {r, -r, 1000 + r};
    std::vector<int32_t> out(3 * n, 7);
    CHECK_OK(c.Gather(Tensor(out.data(), DType::kI32, {n, 3}),
                      ConstTensor(mine, DType::kI32, {3}), root));
    for (int src = 0; src < n; ++src) {
      const bool ok = r == root ? out[3 * src] == src && out[3 * src + 1] == -src &&
                                      out[3 * src + 2] == 1000 + src
                                : out[3 * src] == 7 && out[3 * src + 2] == 7;
      CHECK_TRUE(ok);
    }
  }
  CHECK_OK(c.Barrier());
  {  // a ring of send/recv, two in flight
    const int next = (r + 1) % n, prev = (r + n - 1) % n;
    std::vector<float> a(4, float(r)), a_in(4), b(4, 100.0f + r), b_in(4);
    auto x = c.StartSendRecv(F32(a), next, F32(a_in), prev);
    auto y = c.StartSendRecv(F32(b), next, F32(b_in), prev);
    CHECK_TRUE(x.ok() && y.ok());
    if (x.ok() && y.ok()) {
      CHECK_OK((*y)->Wait());
      CHECK_OK((*x)->Wait());
      CHECK_TRUE(a_in[0] == float(prev) && b_in[3] == 100.0f + prev);
    }
  }
  // Refused before reaching MPI: not counted, communicator still usable.
  std::vector<float> v(4);
  CHECK_TRUE(c.Broadcast(F32(v), n).code() == absl::StatusCode::kInvalidArgument);
  const std::vector<int64_t> huge(n, int64_t{1} << 32);
  CHECK_TRUE(c.AllToAllV(F32(v), huge, F32(v), huge).code() == absl::StatusCode::kInvalidArgument);

  const CollectiveStats st = c.stats();
  CHECK_TRUE(st[CollectiveKind::kAllReduce].calls == 1 &&
             st[CollectiveKind::kAllReduce].bytes == 28);
  CHECK_TRUE(st[CollectiveKind::kAllGather].calls == 1 &&
             st[CollectiveKind::kAllGather].bytes == 6);
  CHECK_TRUE(st[CollectiveKind::kReduceScatter].bytes == 12 * n);
  CHECK_TRUE(st[CollectiveKind::kAllToAllV].calls == 4);
  CHECK_TRUE(st[CollectiveKind::kBroadcast].calls == 2 &&
             st[CollectiveKind::kBroadcast].bytes == 136);
  CHECK_TRUE(st[CollectiveKind::kBarrier].calls == 1);
  CHECK_TRUE(st[CollectiveKind::kGather].calls == 2 && st[CollectiveKind::kGather].bytes == 24);
  CHECK_TRUE(st[CollectiveKind::kSend].calls == 2 && st[CollectiveKind::kSend].bytes == 32);
  CHECK_TRUE(st[CollectiveKind::kRecv].bytes == 32);
}

// For every layout of this world: each group's all-reduce of world ranks sums its members
// as Topology lists them.
void CheckTopologyGroups(int world) {
  const ModelShape m{.n_heads = 840,
                     .n_kv_heads = 840,
                     .head_dim = 8,
                     .ffn = 840,
                     .n_experts = 840,
                     .moe_ffn = 840};
  for (int tp = 1; tp <= world; ++tp) {
    for (int ep = 1; ep <= world; ++ep) {
      if (world % tp != 0 || world % ep != 0) continue;
      absl::StatusOr<Topology> t = Topology::Make(world, tp, ep, world / tp, m);
      CHECK_OK(t.status());
      if (!t.ok()) continue;
      absl::StatusOr<MpiGroups> g = SplitForTopology(MPI_COMM_WORLD, *t, absl::Seconds(20));
      CHECK_OK(g.status());
      if (!g.ok()) continue;
      const std::pair<GroupKind, MpiCommunicator*> comms[] = {{GroupKind::kTp, g->tp.get()},
                                                              {GroupKind::kCp, g->cp.get()},
                                                              {GroupKind::kEp, g->ep.get()},
                                                              {GroupKind::kMoeTp, g->moe_tp.get()}};
      for (auto [kind, c] : comms) {
        const std::vector<int> members = t->Group(kind, g_rank);
        CHECK_TRUE(c->size() == static_cast<int>(members.size()));
        CHECK_TRUE(c->rank() == t->rank_in_group(kind, g_rank));
        CHECK_TRUE(c->world_ranks() == members);
        std::vector<float> v = {static_cast<float>(g_rank)};
        CHECK_OK(c->AllReduceSum(F32(v)));
        CHECK_TRUE(v[0] == std::accumulate(members.begin(), members.end(), 0));
      }
    }
  }
}

int RunCollectives(MpiSession& session) {
  {
    absl::StatusOr<std::unique_ptr<MpiCommunicator>> c =
        MpiCommunicator::Create(MPI_COMM_WORLD, absl::Seconds(20));
    CHECK_OK(c.status());
    if (!c.ok()) return 1;
    CheckCollectives(**c);
    CheckTopologyGroups(session.world_size());
    std::vector<float> total = {static_cast<float>(g_failures)};
    CHECK_OK((*c)->AllReduceSum(F32(total)));
    if (g_rank == 0) {
      std::printf("mpi_test collectives: %s on %d ranks (%g failed checks)\n",
                  total[0] == 0 && g_failures == 0 ? "PASS" : "FAIL", session.world_size(),
                  total[0]);
    }
  }
  return g_failures == 0 ? 0 : 1;
}

int RunKilled(MpiSession& session) {
  constexpr absl::Duration kTimeout = absl::Seconds(3);
  absl::StatusOr<std::unique_ptr<MpiCommunicator>> c =
      MpiCommunicator::Create(MPI_COMM_WORLD, kTimeout);
  if (!c.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", g_rank, c.status().ToString().c_str());
    return 1;
  }
  std::vector<float> v(2304, 1.0f);
  if (absl::Status s = (*c)->AllReduceSum(F32(v)); !s.ok() || v[0] != session.world_size()) {
    std::fprintf(stderr, "rank %d: first all-reduce: %s\n", g_rank, s.ToString().c_str());
    return 1;
  }
  if (g_rank == 1) {
    std::fflush(nullptr);
    raise(SIGKILL);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const absl::Status s = (*c)->AllReduceSum(F32(v));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const bool named =
      std::string(s.message()).find("all-reduce of 2304 F32 elements") != std::string::npos;
  const absl::Status again = (*c)->Barrier();  // broken: fails at once
  const bool ok = s.code() == absl::StatusCode::kDeadlineExceeded && named &&
                  secs < absl::ToDoubleSeconds(kTimeout) + 1.0 &&
                  again.code() == absl::StatusCode::kDeadlineExceeded;
  std::printf("mpi_test killed: rank %d %s after %.2fs: %s\n", g_rank, ok ? "PASS" : "FAIL", secs,
              s.ToString().c_str());
  std::fflush(nullptr);
  // No MPI_Finalize and no destructors: both could wait on the dead peer.
  _exit(ok ? 0 : 1);
}

}  // namespace
}  // namespace tessera::parallel

int main(int argc, char** argv) {
  using namespace tessera::parallel;
  const std::string mode = argc > 1 ? argv[1] : "";
  absl::StatusOr<std::unique_ptr<MpiSession>> session = MpiSession::Init(&argc, &argv);
  if (!session.ok()) {
    std::fprintf(stderr, "%s\n", session.status().ToString().c_str());
    return 1;
  }
  g_rank = (*session)->world_rank();
  if (mode == "collectives") return RunCollectives(**session);
  if (mode == "killed") {
    if ((*session)->world_size() < 2) return 1;
    return RunKilled(**session);
  }
  std::fprintf(stderr, "usage: mpi_test collectives|killed\n");
  return 2;
}
