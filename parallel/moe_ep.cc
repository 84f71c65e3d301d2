// MoeLayer's expert-parallel forwards (ep > 1); placement and contracts in parallel/moe.h.
#include <algorithm>
#include <cstring>
#include <limits>
#include <span>

#include "absl/strings/str_cat.h"
#include "parallel/moe.h"

namespace tessera::parallel {
namespace {

using kernels::ConstTensor;
using kernels::DType;
using kernels::Tensor;

// `v` holding at least max(n, 1) elements (so that an empty payload still has a valid
// pointer); the contents are scratch.
template <typename T>
T* Scratch(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < std::max<int64_t>(n, 1)) v.resize(std::max<int64_t>(n, 1));
  return v.data();
}

// Rows one rank's experts take in one Forward (GroupByExpert's int32 bound on T*k).
constexpr int64_t kMaxRows = std::numeric_limits<int32_t>::max();

// An f32 view of `n` int64 values, for moving counts as raw bytes through AllToAllV (the
// communicator has no integer type; nothing reduces them, so the bits arrive unchanged).
Tensor Int64AsF32(int64_t* p, int64_t n) { return Tensor(p, DType::kF32, {2 * n}); }

}  // namespace

// Every rank routes all T tokens identically, runs its local experts on the rows routed to
// them, and sums its partial with the others' in one all-reduce.
absl::Status MoeLayer::ForwardReplicated(Tensor out, ConstTensor x) {
  const int64_t H = hidden_, T = x.rows();
  const int32_t k = routing_.top_k, El = local_experts_, me = comm_->rank();
  if (T == 0) return absl::OkStatus();  // T is the same on every rank: all skip together
  RouteTokens(x);
  // Local choices go to their slot; the rest to bucket El, which is never computed.
  physical_ids_.resize(T * k);
  for (int64_t i = 0; i < T * k; ++i) {
    const ExpertSlot p = physical_of_logical_[ids_[i]];
    physical_ids_[i] = p.rank == me ? p.slot : El;
  }
  absl::StatusOr<kernels::ExpertGrouping> g =
      kernels::GroupByExpert(physical_ids_.data(), T, k, El + 1);
  if (!g.ok()) return g.status();
  const int64_t N = g->offsets[El];  // rows for local experts, first in grouped order
  float* xg = Scratch(xg_, N * H);
  float* yg = Scratch(yg_, N * H);
  const float* xs = x.as<const float>();
  for (int64_t i = 0; i < N; ++i) std::memcpy(xg + i * H, xs + g->rows[i] * H, H * sizeof(float));
  int64_t bytes = w_.router.bytes() + RunLocalExperts(yg, xg, g->offsets.data());

  // Partial combine, in choice order (as CombineFromExperts, skipping remote choices).
  float* o = out.as<float>();
  std::fill(o, o + T * H, 0.0f);
  for (int64_t t = 0; t < T; ++t) {
    for (int32_t j = 0; j < k; ++j) {
      const int64_t i = g->grouped_row[t * k + j];
      if (i >= N) continue;
      const float w = route_w_[t * k + j];
      const float* src = yg + i * H;
      for (int64_t h = 0; h < H; ++h) o[t * H + h] += w * src[h];
    }
  }
  if (w_.shared && me == 0) {
    SharedForward(out, x);
    bytes += SharedBytes();
  }
  bytes_read_last_forward_ = bytes;
  return comm_->AllReduceSum(Tensor(o, DType::kF32, {T * H}));
}

// Rank `me` with its own T tokens. Layouts (rows of H floats):
//   grouped  the R = T*k routed rows by physical expert (owner rank, slot, token, choice);
//            owner d's rows are [g.offsets[d*El], g.offsets[(d+1)*El]).
//   send_    grouped rows minus this rank's own block: what dispatch sends, and where the
//            combine's replies land (same order).
//   recv_    rows from each peer s != me, by s then slot: what dispatch receives, and the
//            replies sent back (same order).
//   xg_/yg_  this rank's expert inputs/outputs by slot, then source rank (me included).
absl::Status MoeLayer::ForwardSharded(Tensor out, ConstTensor x) {
  const int64_t H = hidden_, T = x.rows();
  const int32_t k = routing_.top_k, El = local_experts_;
  const int ep = comm_->size(), me = comm_->rank();
  RouteTokens(x);  // T may be 0: this rank still serves its experts to the others
  physical_ids_.resize(T * k);
  for (int64_t i = 0; i < T * k; ++i) {
    const ExpertSlot p = physical_of_logical_[ids_[i]];
    physical_ids_[i] = p.rank * El + p.slot;
  }
  absl::StatusOr<kernels::ExpertGrouping> g =
      kernels::GroupByExpert(physical_ids_.data(), T, k, ep * El);
  if (!g.ok()) return g.status();
  const int64_t R = T * k, own_begin = g->offsets[me * El], own_end = g->offsets[(me + 1) * El];
  const int64_t R_out = R - (own_end - own_begin);  // rows leaving this rank

  // (1) Counts: [ep, El] matrix, in[s][e] = rows source s sends to this rank's slot e.
  int64_t* counts = Scratch(counts_, 3 * ep * El);
  int64_t* send_counts = counts;                // [ep-1, El]: the peers' blocks, peer order
  int64_t* in = counts + ep * El;               // [ep, El]
  int64_t* recv_counts = counts + 2 * ep * El;  // [ep-1, El]
  std::vector<int64_t> sc(ep), rc(ep);          // per peer, in elements
  for (int d = 0, n = 0; d < ep; ++d) {
    if (d == me) continue;
    for (int32_t e = 0; e < El; ++e) send_counts[n++] = g->count(d * El + e);
  }
  for (int d = 0; d < ep; ++d) sc[d] = rc[d] = d == me ? 0 : 2 * El;
  if (absl::Status s = comm_->AllToAllV(Int64AsF32(recv_counts, (ep - 1) * El), rc,
                                        Int64AsF32(send_counts, (ep - 1) * El), sc);
      !s.ok()) {
    return s;
  }
  int64_t N = 0, N_in = 0;  // rows this rank's experts run; of them, from peers
  for (int s = 0, n = 0; s < ep; ++s) {
    for (int32_t e = 0; e < El; ++e) {
      const int64_t c = s == me ? g->count(me * El + e) : recv_counts[n++];
      // Counts come over the wire: never trust them with an allocation or an index.
      if (c < 0 || c > kMaxRows - N) {
        return absl::InvalidArgumentError(
            absl::StrCat("MoE dispatch: rank ", s, " announced ", c, " rows for expert slot ", e,
                         " of rank ", me, " (", N, " already; at most ", kMaxRows, " in all)"));
      }
      in[s * El + e] = c;
      N += c;
      N_in += s == me ? 0 : c;
    }
  }

  // (2) Dispatch: gather the rows for peers from x, exchange.
  float* send = Scratch(send_, std::max(R_out, int64_t{1}) * H);
  float* recv = Scratch(recv_, std::max(N_in, int64_t{1}) * H);
  const float* xs = x.as<const float>();
  auto gather = [&](int64_t from, int64_t to, float* dst) {
    for (int64_t i = from; i < to; ++i) {
      std::memcpy(dst + (i - from) * H, xs + g->rows[i] * H, H * sizeof(float));
    }
  };
  gather(0, own_begin, send);
  gather(own_end, R, send + own_begin * H);
  for (int d = 0; d < ep; ++d) {
    sc[d] = d == me ? 0 : H * (g->offsets[(d + 1) * El] - g->offsets[d * El]);
    rc[d] = 0;
    for (int32_t e = 0; e < El && d != me; ++e) rc[d] += H * in[d * El + e];
  }
  if (absl::Status s = comm_->AllToAllV(Tensor(recv, DType::kF32, {N_in * H}), rc,
                                        ConstTensor(send, DType::kF32, {R_out * H}), sc);
      !s.ok()) {
    return s;
  }

  // Expert-major inputs: slot e's rows from source 0, 1, ... (this rank's straight from x).
  std::vector<int64_t> offsets(El + 1, 0);  // [El + 1] rows per slot
  std::vector<int64_t> at(ep * El);         // [ep, El] first row of (s, e) in xg_
  for (int32_t e = 0; e < El; ++e) {
    offsets[e + 1] = offsets[e];
    for (int s = 0; s < ep; ++s) {
      at[s * El + e] = offsets[e + 1];
      offsets[e + 1] += in[s * El + e];
    }
  }
  float* xg = Scratch(xg_, N * H);
  float* yg = Scratch(yg_, N * H);
  for (int s = 0, n = 0; s < ep; ++s) {
    for (int32_t e = 0; e < El; ++e) {
      const int64_t c = in[s * El + e], src = g->offsets[me * El + e];
      if (s == me) {
        for (int64_t m = 0; m < c; ++m) {
          std::memcpy(xg + (at[s * El + e] + m) * H, xs + g->rows[src + m] * H, H * sizeof(float));
        }
      } else {
        std::memcpy(xg + at[s * El + e] * H, recv + n * H, c * H * sizeof(float));
        n += c;
      }
    }
  }
  int64_t bytes = w_.router.bytes() + RunLocalExperts(yg, xg, offsets.data());

  // (3) Combine: replies go back in the order the rows came; ours land where we sent them.
  for (int s = 0, n = 0; s < ep; ++s) {
    for (int32_t e = 0; e < El && s != me; ++e) {
      const int64_t c = in[s * El + e];
      std::memcpy(recv + n * H, yg + at[s * El + e] * H, c * H * sizeof(float));
      n += c;
    }
  }
  if (absl::Status s = comm_->AllToAllV(Tensor(send, DType::kF32, {R_out * H}), sc,
                                        ConstTensor(recv, DType::kF32, {N_in * H}), rc);
      !s.ok()) {
    return s;
  }
  // Weighted sum in choice order, as CombineFromExperts.
  float* o = out.as<float>();
  for (int64_t t = 0; t < T; ++t) {
    float* ot = o + t * H;
    std::fill(ot, ot + H, 0.0f);
    for (int32_t j = 0; j < k; ++j) {
      const int64_t i = g->grouped_row[t * k + j];
      const float* y;
      if (i < own_begin) {
        y = send + i * H;
      } else if (i >= own_end) {
        y = send + (i - (own_end - own_begin)) * H;
      } else {
        const int32_t e = physical_ids_[t * k + j] - me * El;
        y = yg + (at[me * El + e] + (i - g->offsets[me * El + e])) * H;
      }
      const float w = route_w_[t * k + j];
      for (int64_t h = 0; h < H; ++h) ot[h] += w * y[h];
    }
  }
  if (w_.shared && T > 0) {
    SharedForward(out, x);
    bytes += SharedBytes();
  }
  bytes_read_last_forward_ = bytes;
  return absl::OkStatus();
}

}  // namespace tessera::parallel
