// Ring-attention prefill across MPI ranks (run under mpirun; cp = the world size): one
// attention layer of a prompt of L tokens split zigzag over the ranks, random q/k/v at the
// dims given, as parallel::RingAttention runs it. Prints, per L, one JSON line from rank 0:
// wall seconds (the slowest rank), per-step compute and wait seconds summed over steps and
// averaged over ranks, the overlap efficiency (compute / (compute + wait)), the K/V block
// bytes a step passes on, and the compute seconds of the slowest step's block.
//
//   mpirun -np CP ring_bench [--lengths 1024,4096] [--heads 8] [--kv-heads 4] [--head-dim 8]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "parallel/mpi_communicator.h"
#include "parallel/ring_attention.h"

namespace {

using tessera::kernels::ConstTensor;
using tessera::kernels::DType;
using tessera::kernels::Tensor;
namespace par = tessera::parallel;

std::vector<int64_t> Ints(const std::string& s) {
  std::vector<int64_t> out;
  for (absl::string_view p : absl::StrSplit(s, ',')) {
    int64_t v;
    if (absl::SimpleAtoi(p, &v) && v > 0) out.push_back(v);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  auto session = par::MpiSession::Init(&argc, &argv);
  if (!session.ok()) return std::fprintf(stderr, "%s\n", session.status().ToString().c_str()), 1;
  std::vector<int64_t> lengths = {1024, 2048, 4096, 8192, 16384};
  int64_t hq = 8, hkv = 4, d = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    std::vector<int64_t> v = Ints(value);
    if (v.empty()) return std::fprintf(stderr, "ring_bench: bad value for %s\n", flag.c_str()), 2;
    if (flag == "--lengths") lengths = v;
    else if (flag == "--heads") hq = v[0];
    else if (flag == "--kv-heads") hkv = v[0];
    else if (flag == "--head-dim") d = v[0];
    else return std::fprintf(stderr, "ring_bench: unknown flag %s\n", flag.c_str()), 2;
  }
  auto comm = par::MpiCommunicator::Create(MPI_COMM_WORLD, absl::Seconds(600));
  if (!comm.ok()) return std::fprintf(stderr, "%s\n", comm.status().ToString().c_str()), 1;
  const int cp = (*comm)->size(), rank = (*comm)->rank();
  for (int64_t L : lengths) {
    const par::ZigzagShard s = par::Zigzag(L, cp, rank);
    const int64_t n = s.size(), qw = hq * d, kvw = hkv * d;
    std::mt19937 rng(static_cast<uint32_t>(L * 31 + rank));
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> q(n * qw), k(n * kvw), v(n * kvw), out(n * qw);
    for (auto* x : {&q, &k, &v}) {
      for (float& f : *x) f = u(rng);
    }
    std::vector<int32_t> pos;
    for (int i = 0; i < 2; ++i) {
      for (int64_t p = s.begin[i]; p < s.end[i]; ++p) pos.push_back(static_cast<int32_t>(p));
    }
    const par::RingAttentionArgs args{.q = ConstTensor(q.data(), DType::kF32, {n, qw}),
                                      .k = ConstTensor(k.data(), DType::kF32, {n, kvw}),
                                      .v = ConstTensor(v.data(), DType::kF32, {n, kvw}),
                                      .positions = pos,
                                      .head_dim = d,
                                      .scale = 1.0f / std::sqrt(static_cast<float>(d)),
                                      .capacity = par::ZigzagCapacity(L, cp)};
    if (!(*comm)->Barrier().ok()) return 1;
    std::vector<par::RingStep> steps;
    const auto t0 = std::chrono::steady_clock::now();
    absl::Status st = par::RingAttention(**comm, Tensor(out.data(), DType::kF32, {n, qw}), nullptr,
                                         args, &steps);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
    double compute = 0, wait = 0, worst_step = 0;
    for (const par::RingStep& x : steps) {
      compute += x.compute_s, wait += x.wait_s;
      worst_step = std::max(worst_step, x.compute_s);
    }
    // [wall, compute, wait] summed over ranks; the slowest step and rank by max.
    std::vector<float> sum = {static_cast<float>(compute), static_cast<float>(wait)};
    std::vector<float> all(2 * cp), walls(cp), worst(cp);
    std::vector<float> mine = {static_cast<float>(wall)}, step = {static_cast<float>(worst_step)};
    if (!(*comm)->AllGather(Tensor(all.data(), DType::kF32, {cp, 2}), ConstTensor(sum.data(), DType::kF32, {2})).ok() ||
        !(*comm)->AllGather(Tensor(walls.data(), DType::kF32, {cp, 1}), ConstTensor(mine.data(), DType::kF32, {1})).ok() ||
        !(*comm)->AllGather(Tensor(worst.data(), DType::kF32, {cp, 1}), ConstTensor(step.data(), DType::kF32, {1})).ok()) {
      return 1;
    }
    if (rank == 0) {
      double c = 0, w = 0;
      for (int r = 0; r < cp; ++r) c += all[2 * r], w += all[2 * r + 1];
      c /= cp, w /= cp;
      const int64_t block_bytes = 16 + par::ZigzagCapacity(L, cp) * (8 + 8 * kvw);
      std::printf("{\"cp\": %d, \"length\": %ld, \"heads\": %ld, \"kv_heads\": %ld, \"head_dim\": %ld, "
                  "\"wall_s\": %.4f, \"compute_s\": %.4f, \"wait_s\": %.4f, \"overlap_efficiency\": %.4f, "
                  "\"block_bytes\": %ld, \"max_step_compute_s\": %.4f}\n",
                  cp, static_cast<long>(L), static_cast<long>(hq), static_cast<long>(hkv),
                  static_cast<long>(d), *std::max_element(walls.begin(), walls.end()), c, w,
                  c + w > 0 ? c / (c + w) : 1.0, static_cast<long>(block_bytes),
                  *std::max_element(worst.begin(), worst.end()));
      std::fflush(stdout);
    }
  }
  return 0;
}
