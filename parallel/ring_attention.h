// Context-parallel causal attention (ring attention) over a cp group: DESIGN.md §2.
//
// A sequence of L tokens is cut into 2·cp chunks (the first L % (2·cp) of them one token
// longer, so nothing is padded or dropped); rank r holds chunks r and 2·cp−1−r (zigzag),
// which balances the causal mask: every rank gets one early and one late chunk. Each rank
// has the queries, keys and values of its own tokens at their true positions. In each of
// the cp steps a rank posts the send of the K/V block it holds to rank r+1 and the receive
// of the next one from r−1 *before* it computes attention of its queries against the held
// block, then waits and swaps buffers, so the transfer hides behind compute. Pieces of a
// block that no query can see (all keys after every query, outside the sliding window, or
// in another document) are skipped. Partial outputs are merged in f32 by log-sum-exp; the
// result equals single-rank attention over the whole sequence to rounding.
//
// Thread-compatible: one call at a time per communicator; the kernels run on the calling
// thread's current pool.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "kernels/tensor.h"
#include "parallel/communicator.h"

namespace tessera::parallel {

// The tokens of `rank` in the zigzag split of `length` tokens over `cp` ranks: two ranges
// of positions, [begin[0], end[0]) then [begin[1], end[1]), either possibly empty.
struct ZigzagShard {
  int64_t begin[2] = {0, 0}, end[2] = {0, 0};
  int64_t size() const { return end[0] - begin[0] + end[1] - begin[1]; }
};
ZigzagShard Zigzag(int64_t length, int cp, int rank);
// The most tokens any rank holds (the ring's block capacity).
int64_t ZigzagCapacity(int64_t length, int cp);

// What happened in one ring step (step s computes on the block of rank r − s).
struct RingStep {
  double compute_s = 0;  // attention on the held block
  double wait_s = 0;     // waiting for the next block after compute
  int64_t pieces = 0, skipped = 0;  // (query run, key run) pairs computed and skipped
};

// In order, for tests of the overlap: the ring's calls and the communicator's (see
// tests/parallel/ring_attention_test.cc's recording communicator).
enum class RingEvent { kPosted, kComputeBegin, kComputeEnd, kWaitBegin, kWaitEnd };
struct RingTrace {
  std::vector<std::pair<int, RingEvent>> events;  // (step, event)
};

struct RingAttentionArgs {
  kernels::ConstTensor q;              // [n, Hq*D] f32: this rank's tokens
  kernels::ConstTensor k, v;           // [n, Hkv*D] f32
  std::span<const int32_t> positions;  // [n] true positions
  std::span<const int32_t> documents = {};  // [n] document ids (packed sequences), or empty: one
  int64_t head_dim = 0;
  int64_t window = 0;  // 0: full causal
  float scale = 1.0f;
  int64_t capacity = 0;  // the most tokens any rank of the group holds (same on every rank)
};

// out [n, Hq*D] and lse [n, Hq] (optional) for this rank's queries against every rank's
// keys. Every rank of `cp` calls it with the same head_dim, window, scale and capacity.
// Returns the communicator's error (a dead peer: DeadlineExceeded) or InvalidArgument for
// inconsistent shapes; `out` is then unspecified.
absl::Status RingAttention(Communicator& cp, kernels::Tensor out, kernels::Tensor* lse,
                           const RingAttentionArgs& args, std::vector<RingStep>* steps = nullptr,
                           RingTrace* trace = nullptr);

// acc <- the log-sum-exp merge of acc and part, row by row over `rows` rows of `heads`
// heads of `d` values: lse = max + log1p(exp(min − max)), out = Σ out_i·exp(lse_i − lse).
// A part with lse = -inf leaves acc as it is.
void MergeAttention(float* acc_out, float* acc_lse, const float* part_out, const float* part_lse,
                    int64_t rows, int64_t heads, int64_t d);

}  // namespace tessera::parallel
