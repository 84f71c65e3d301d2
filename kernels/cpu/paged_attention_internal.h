// The unit of PagedAttention's work, shared by its driver (paged_attention.cc) and its
// kernels (portable in paged_attention.cc, AVX2 in paged_attention_avx2.cc). Not a public API.
//
// A sequence's keys are cut into splits of kSplitKeys positions at fixed multiples
// ([0, 64), [64, 128), ...). Each split gives, per query lane, a partial softmax state;
// a lane's result is the left fold of its splits' partials in split order. The splits of
// one work item may run on one thread (folded as they finish) or on many (stored, folded
// after): the same operations in the same order either way, so a row's output depends
// only on its position and its keys — not on the batch, the thread count or how its
// prompt was chunked.
#pragma once

#include <cstdint>

#include "kernels/paged_attention.h"

namespace tessera::kernels::internal {

inline constexpr int64_t kSplitKeys = 64;

// Query rows [0, rows) of one sequence (row r at position first_position + r), every
// head, against keys [k_begin, k_end) of the sequence. All KV heads at once, so that the
// split reads whole cache rows (contiguous memory) rather than one head's slice of each.
struct SplitTask {
  const float* q = nullptr;  // row 0, head 0; rows Hq * D floats apart
  int64_t rows = 0, heads = 0, group = 0, d = 0;  // heads = Hq, group = Hq / Hkv
  int64_t first_position = 0;
  int64_t k_begin = 0, k_end = 0;
  int64_t window = 0;
  float scale = 1.0f;
  const PagedKv* cache = nullptr;
  const int32_t* blocks = nullptr;
};

// Per lane (row r, head h: lane r * heads + h): the running max m of the scaled scores,
// the sum l of exp(score - m) and the unnormalised output acc[lane * d, + d). A lane that
// sees no key has m = -inf, l = 0 and acc = 0.
struct Partial {
  float* m = nullptr;
  float* l = nullptr;
  float* acc = nullptr;
};

// Scratch for one thread: a block's keys and values widened to f32 (block_size * Hkv * d
// floats each; 16-bit caches only) and block_size + 8 scores (Score4 writes whole fours).
struct SplitScratch {
  float* k = nullptr;
  float* v = nullptr;
  float* scores = nullptr;
};

// The pieces both kernels walk in the same way (paged_attention.cc):
// keys [*lo, *hi) that some row of the task can see;
void TaskKeys(const SplitTask& t, int64_t* lo, int64_t* hi);
// row r's visible keys within [kb0, kb1) (empty when *lo >= *hi);
void RowKeys(const SplitTask& t, int64_t r, int64_t kb0, int64_t kb1, int64_t* lo, int64_t* hi);
// keys and values [kb0, kb1) of block b (a range inside it), every KV head, as f32 rows
// Hkv * d floats apart: the cache itself when it is f32, else widened into the scratch;
void BlockRows(const SplitTask& t, int64_t b, int64_t kb0, int64_t kb1, SplitScratch scratch,
               const float** k, const float** v);
// the online softmax of one lane over a block: given its n scaled scores in sc, rescales
// the lane's state to the new max, adds exp(score - m) to l and leaves those weights in sc
// for the value sum.
void FoldScores(Partial out, int64_t lane, float* sc, int64_t n, int64_t d);
// out = no key seen yet, for `lanes` lanes.
void ClearPartial(Partial out, int64_t lanes, int64_t d);

// Fills `out` (rows * heads lanes) with the split's partials. The AVX2 kernel needs
// d % 8 == 0 and simd::HasAvx2(); AttendSplit picks it when it can.
void AttendSplit(const SplitTask& task, Partial out, SplitScratch scratch);
void AttendSplitAvx2(const SplitTask& task, Partial out, SplitScratch scratch);

}  // namespace tessera::kernels::internal
