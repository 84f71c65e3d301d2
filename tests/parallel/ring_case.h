// One ring-attention case shared by the in-process test (ring_attention_test.cc) and the MPI
// one (ring_attention_mpi_test.cc): a whole sequence's random q/k/v, the single-rank
// reference (kernels::AttentionReference over each document separately), and a rank's
// zigzag share of the inputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "parallel/ring_attention.h"

namespace tessera::parallel::testing {

struct RingCase {
  int64_t length = 0, hq = 6, hkv = 2, d = 16, window = 0;
  std::vector<int64_t> doc_starts = {};  // positions where a new document begins (besides 0)
  uint32_t seed = 1;
};

struct RingData {
  std::vector<float> q, k, v, out, lse;  // whole sequence; out/lse the reference
  std::vector<int32_t> pos, doc;
};

inline RingData MakeRingData(const RingCase& c) {
  RingData r;
  std::mt19937 rng(c.seed);
  std::uniform_real_distribution<float> u(-1, 1);
  auto fill = [&](std::vector<float>& x, int64_t n) {
    x.resize(n);
    for (float& f : x) f = u(rng);
  };
  const int64_t L = c.length, qw = c.hq * c.d, kvw = c.hkv * c.d;
  fill(r.q, L * qw), fill(r.k, L * kvw), fill(r.v, L * kvw);
  r.pos.resize(L), r.doc.resize(L);
  for (int64_t i = 0, d = 0; i < L; ++i) {
    if (std::count(c.doc_starts.begin(), c.doc_starts.end(), i)) ++d;
    r.pos[i] = static_cast<int32_t>(i), r.doc[i] = static_cast<int32_t>(d);
  }
  r.out.assign(L * qw, 0), r.lse.assign(L * c.hq, 0);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.d));
  for (int64_t b = 0; b < L;) {  // one document at a time
    int64_t e = b;
    while (e < L && r.doc[e] == r.doc[b]) ++e;
    const int64_t n = e - b;
    kernels::AttentionReference(
        kernels::Tensor(r.out.data() + b * qw, kernels::DType::kF32, {n, qw}),
        kernels::Tensor(r.lse.data() + b * c.hq, kernels::DType::kF32, {n, c.hq}),
        kernels::ConstTensor(r.q.data() + b * qw, kernels::DType::kF32, {n, qw}),
        kernels::ConstTensor(r.k.data() + b * kvw, kernels::DType::kF32, {n, kvw}),
        kernels::ConstTensor(r.v.data() + b * kvw, kernels::DType::kF32, {n, kvw}),
        r.pos.data() + b, r.pos.data() + b, c.d, c.window, scale);
    b = e;
  }
  return r;
}

// Rank `rank`'s rows of a whole-sequence array of `width` values per token.
template <typename T>
std::vector<T> ShardRows(const std::vector<T>& all, int64_t width, const ZigzagShard& s) {
  std::vector<T> out;
  for (int i = 0; i < 2; ++i) out.insert(out.end(), all.begin() + s.begin[i] * width, all.begin() + s.end[i] * width);
  return out;
}

// Runs rank `rank`'s share on `comm`; returns the largest relative error of its out and lse
// against the reference (or -1 when the call failed, with *status set).
inline double RunRingShare(Communicator& comm, const RingCase& c, const RingData& r,
                           absl::Status* status, std::vector<RingStep>* steps = nullptr,
                           RingTrace* trace = nullptr) {
  const int cp = comm.size(), rank = comm.rank();
  const ZigzagShard s = Zigzag(c.length, cp, rank);
  const int64_t n = s.size(), qw = c.hq * c.d, kvw = c.hkv * c.d;
  const std::vector<float> q = ShardRows(r.q, qw, s), k = ShardRows(r.k, kvw, s),
                           v = ShardRows(r.v, kvw, s);
  const std::vector<int32_t> pos = ShardRows(r.pos, 1, s), doc = ShardRows(r.doc, 1, s);
  std::vector<float> out(n * qw, 9.0f), lse(n * c.hq, 9.0f);
  RingAttentionArgs args{
      .q = kernels::ConstTensor(q.data(), kernels::DType::kF32, {n, qw}),
      .k = kernels::ConstTensor(k.data(), kernels::DType::kF32, {n, kvw}),
      .v = kernels::ConstTensor(v.data(), kernels::DType::kF32, {n, kvw}),
      .positions = pos,
      .documents = c.doc_starts.empty() ? std::span<const int32_t>() : std::span<const int32_t>(doc),
      .head_dim = c.d, .window = c.window, .scale = 1.0f / std::sqrt(static_cast<float>(c.d)),
      .capacity = ZigzagCapacity(c.length, cp)};
  kernels::Tensor lt(lse.data(), kernels::DType::kF32, {n, c.hq});
  *status = RingAttention(comm, kernels::Tensor(out.data(), kernels::DType::kF32, {n, qw}), &lt,
                          args, steps, trace);
  if (!status->ok()) return -1;
  const std::vector<float> want = ShardRows(r.out, qw, s), want_lse = ShardRows(r.lse, c.hq, s);
  double num = 0, den = 1e-30, lnum = 0, lden = 1e-30;
  for (size_t i = 0; i < out.size(); ++i) {
    num = std::max(num, std::fabs(double(out[i]) - want[i]));
    den = std::max(den, std::fabs(double(want[i])));
  }
  for (size_t i = 0; i < lse.size(); ++i) {
    lnum = std::max(lnum, std::fabs(double(lse[i]) - want_lse[i]));
    lden = std::max(lden, std::fabs(double(want_lse[i])));
  }
  return std::max(num / den, lnum / lden);
}

}  // namespace tessera::parallel::testing
