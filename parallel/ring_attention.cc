#include "parallel/ring_attention.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/attention.h"

namespace tessera::parallel {

using kernels::ConstTensor;
using kernels::DType;
using kernels::Tensor;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The block that travels the ring, as bytes: a header {tokens, has_documents}, then
// positions [cap] i32, documents [cap] i32, keys [cap, kv_width] f32, values likewise.
class Block {
 public:
  Block(int64_t capacity, int64_t kv_width)
      : cap_(capacity), width_(kv_width), bytes_(kHeader + capacity * (8 + 8 * kv_width)) {}

  void Pack(const RingAttentionArgs& a, int64_t n) {
    const int64_t h[2] = {n, a.documents.empty() ? 0 : 1};
    std::memcpy(bytes_.data(), h, kHeader);
    if (n == 0) return;  // (an empty rank's spans may be null)
    std::memcpy(positions(), a.positions.data(), n * 4);
    if (!a.documents.empty()) std::memcpy(documents(), a.documents.data(), n * 4);
    std::memcpy(keys(), a.k.as<const float>(), n * width_ * 4);
    std::memcpy(values(), a.v.as<const float>(), n * width_ * 4);
  }
  int64_t tokens() const { return Header(0); }
  bool has_documents() const { return Header(1) != 0; }

  int32_t* positions() { return reinterpret_cast<int32_t*>(bytes_.data() + kHeader); }
  int32_t* documents() { return positions() + cap_; }
  float* keys() { return reinterpret_cast<float*>(documents() + cap_); }
  float* values() { return keys() + cap_ * width_; }

  ConstTensor cview() const {
    return ConstTensor(bytes_.data(), DType::kU8, {static_cast<int64_t>(bytes_.size())});
  }
  Tensor view() { return Tensor(bytes_.data(), DType::kU8, {static_cast<int64_t>(bytes_.size())}); }

 private:
  static constexpr int64_t kHeader = 16;
  int64_t Header(int i) const {
    int64_t h[2];
    std::memcpy(h, bytes_.data(), kHeader);
    return h[i];
  }
  int64_t cap_, width_;
  std::vector<uint8_t> bytes_;
};

// A maximal range of tokens [begin, end) with consecutive positions and one document.
struct Run {
  int64_t begin, end;
  int32_t min_pos, max_pos, doc;
};

std::vector<Run> Runs(const int32_t* pos, const int32_t* doc, int64_t n) {
  std::vector<Run> runs;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t d = doc ? doc[i] : 0;
    if (runs.empty() || pos[i] != pos[i - 1] + 1 || d != runs.back().doc) {
      runs.push_back({i, i + 1, pos[i], pos[i], d});
    } else {
      runs.back().end = i + 1;
    }
    runs.back().min_pos = std::min(runs.back().min_pos, pos[i]);
    runs.back().max_pos = std::max(runs.back().max_pos, pos[i]);
  }
  return runs;
}

// True when no query of `q` can see a key of `k`: every key after every query, every key
// outside the window of every query, or another document.
bool Invisible(const Run& q, const Run& k, int64_t window) {
  if (q.doc != k.doc || k.min_pos > q.max_pos) return true;
  return window > 0 && k.max_pos < q.min_pos && q.min_pos - k.max_pos >= window;
}

}  // namespace

ZigzagShard Zigzag(int64_t length, int cp, int rank) {
  const int64_t chunks = 2 * static_cast<int64_t>(cp);
  auto begin_of = [&](int64_t c) { return c * (length / chunks) + std::min(c, length % chunks); };
  ZigzagShard s;
  const int64_t c[2] = {rank, chunks - 1 - rank};
  for (int i = 0; i < 2; ++i) s.begin[i] = begin_of(c[i]), s.end[i] = begin_of(c[i] + 1);
  return s;
}

int64_t ZigzagCapacity(int64_t length, int cp) {
  int64_t cap = 0;
  for (int r = 0; r < cp; ++r) cap = std::max(cap, Zigzag(length, cp, r).size());
  return cap;
}

void MergeAttention(float* acc_out, float* acc_lse, const float* part_out, const float* part_lse,
                    int64_t rows, int64_t heads, int64_t d) {
  for (int64_t i = 0; i < rows * heads; ++i) {
    const float b = part_lse[i];
    if (b == kNegInf) continue;
    float* o = acc_out + i * d;
    const float* p = part_out + i * d;
    const float a = acc_lse[i];
    if (a == kNegInf) {
      std::copy(p, p + d, o);
      acc_lse[i] = b;
      continue;
    }
    const float hi = std::max(a, b), lse = hi + std::log1p(std::exp(std::min(a, b) - hi));
    const float wa = std::exp(a - lse), wb = std::exp(b - lse);
    for (int64_t j = 0; j < d; ++j) o[j] = o[j] * wa + p[j] * wb;
    acc_lse[i] = lse;
  }
}

absl::Status RingAttention(Communicator& cp, Tensor out, Tensor* lse, const RingAttentionArgs& a,
                           std::vector<RingStep>* steps, RingTrace* trace) {
  const int64_t n = a.q.rows(), D = a.head_dim;
  if (D <= 0 || a.q.cols() % D != 0 || a.k.cols() % D != 0 || a.k.cols() == 0 ||
      (a.q.cols() / D) % (a.k.cols() / D) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("ring attention: q width ", a.q.cols(),
                                                   " and kv width ", a.k.cols(),
                                                   " do not fit head_dim ", D));
  }
  const int64_t qw = a.q.cols(), kvw = a.k.cols(), hq = qw / D;
  if (a.k.rows() != n || a.v.rows() != n || a.v.cols() != kvw ||
      static_cast<int64_t>(a.positions.size()) != n ||
      (!a.documents.empty() && static_cast<int64_t>(a.documents.size()) != n) ||
      out.rows() != n || out.cols() != qw || (lse != nullptr && lse->numel() != n * hq)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring attention: inconsistent shapes for ", n, " tokens"));
  }
  if (n > a.capacity) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring attention: ", n, " tokens on this rank, capacity ", a.capacity));
  }
  const int size = cp.size(), rank = cp.rank();
  Block cur(a.capacity, kvw), next(a.capacity, kvw);
  cur.Pack(a, n);

  // Accumulators: out starts at 0 with lse -inf (no key seen).
  float* acc = out.as<float>();
  std::fill(acc, acc + n * qw, 0.0f);
  std::vector<float> acc_lse(n * hq, kNegInf);
  const std::vector<Run> q_runs = Runs(a.positions.data(),
                                       a.documents.empty() ? nullptr : a.documents.data(), n);
  int64_t longest = 0;
  for (const Run& r : q_runs) longest = std::max(longest, r.end - r.begin);
  std::vector<float> part(longest * qw), part_lse(longest * hq);

  for (int s = 0; s < size; ++s) {
    std::unique_ptr<PendingSendRecv> pending;
    if (s + 1 < size) {
      absl::StatusOr<std::unique_ptr<PendingSendRecv>> p =
          cp.StartSendRecv(cur.cview(), (rank + 1) % size, next.view(), (rank + size - 1) % size);
      if (!p.ok()) return p.status();
      pending = std::move(*p);
    }
    RingStep step;
    if (trace) trace->events.push_back({s, RingEvent::kComputeBegin});
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t held = cur.tokens();
    if (held < 0 || held > a.capacity || cur.has_documents() != !a.documents.empty()) {
      return absl::InternalError(absl::StrCat("ring attention: the block from rank ",
                                              (rank + size - s) % size, " holds ", held,
                                              " tokens (capacity ", a.capacity, ")",
                                              cur.has_documents() != !a.documents.empty()
                                                  ? " and disagrees on document masks"
                                                  : ""));
    }
    const std::vector<Run> k_runs =
        Runs(cur.positions(), cur.has_documents() ? cur.documents() : nullptr, held);
    for (const Run& qr : q_runs) {
      for (const Run& kr : k_runs) {
        if (Invisible(qr, kr, a.window)) {
          ++step.skipped;
          continue;
        }
        ++step.pieces;
        const int64_t qn = qr.end - qr.begin, kn = kr.end - kr.begin;
        kernels::Attention(Tensor(part.data(), DType::kF32, {qn, qw}),
                           Tensor(part_lse.data(), DType::kF32, {qn, hq}),
                           ConstTensor(a.q.as<const float>() + qr.begin * qw, DType::kF32, {qn, qw}),
                           ConstTensor(cur.keys() + kr.begin * kvw, DType::kF32, {kn, kvw}),
                           ConstTensor(cur.values() + kr.begin * kvw, DType::kF32, {kn, kvw}),
                           a.positions.data() + qr.begin, cur.positions() + kr.begin, D, a.window,
                           a.scale);
        MergeAttention(acc + qr.begin * qw, acc_lse.data() + qr.begin * hq, part.data(),
                       part_lse.data(), qn, hq, D);
      }
    }
    step.compute_s = Since(t0);
    if (trace) trace->events.push_back({s, RingEvent::kComputeEnd});
    if (pending) {
      const auto t1 = std::chrono::steady_clock::now();
      if (absl::Status st = pending->Wait(); !st.ok()) return st;
      step.wait_s = Since(t1);
      std::swap(cur, next);
    }
    if (steps) steps->push_back(step);
  }
  if (lse != nullptr) std::copy(acc_lse.begin(), acc_lse.end(), lse->as<float>());
  return absl::OkStatus();
}

}  // namespace tessera::parallel
