// Batched causal attention over a paged KV cache: one call per layer for a whole step,
// every sequence of the step at once (decode tokens and prefill chunks mixed), reading K/V
// straight from each sequence's block table (no gather).
//
// Dims: T query rows (the step's new tokens, sequence after sequence), Hq query heads, Hkv
// KV heads (Hq a multiple of Hkv), D head dim, B block size (positions per block).
//   out [T, Hq*D] f32       q [T, Hq*D] f32
//   lse [T, Hq] f32 (optional): log-sum-exp of the visible scaled scores, -inf if none
//   cache: one layer's pool; key `p` of a sequence is row p % B of block table[p / B]:
//          k + block * block_stride + (p % B) * (Hkv*D) elements, likewise v.
// Sequence i owns q rows [q_begin, q_begin + q_len), at positions
// [first_position, first_position + q_len); its keys are positions [0, kv_len), already in
// the cache (the step's own new K/V written first), kv_len >= first_position + q_len.
// Key p is visible to the query at position P iff p <= P and (window == 0 or P - p <
// window). Query head h reads KV head h / (Hq/Hkv). Softmax in f32, online (blockwise).
//
// Work is split over (sequence, block of 16 query rows) on the current thread pool; each
// item reads whole cache rows (every KV head, contiguous memory) once for all query heads.
// A sequence's keys are cut into 64-position splits merged by log-sum-exp, and when a step
// has too few items to keep the threads busy (one long decode, say) the splits run in
// parallel. A row's output depends only on its position and keys, bit for bit: not on the
// batch, the thread count or how its prompt was chunked. Shapes and tables are CHECKed
// (the engine builds them).
#pragma once

#include <cstdint>
#include <span>

#include "kernels/tensor.h"

namespace tessera::kernels {

struct PagedKv {
  // Elements of `type`: kF32, kF16 or kBF16 (16-bit ones are widened to f32 as they are read,
  // one block of one KV head at a time; scores and sums stay f32).
  const void* k = nullptr;
  const void* v = nullptr;
  DType type = DType::kF32;
  int64_t num_blocks = 0;
  int64_t block_size = 0;    // B
  int64_t block_stride = 0;  // elements from one block's first key to the next block's
  int64_t kv_heads = 0;      // Hkv: a key row is Hkv*D elements
};

struct PagedSeq {
  int64_t q_begin = 0, q_len = 0;
  int64_t first_position = 0;
  int64_t kv_len = 0;
  std::span<const int32_t> blocks;  // at least ceil(kv_len / B) entries
};

void PagedAttention(Tensor out, Tensor* lse, ConstTensor q, const PagedKv& cache,
                    std::span<const PagedSeq> seqs, int64_t head_dim, int64_t window,
                    float scale);
// The same by gathering each sequence's keys and values and calling AttentionReference.
void PagedAttentionReference(Tensor out, Tensor* lse, ConstTensor q, const PagedKv& cache,
                             std::span<const PagedSeq> seqs, int64_t head_dim, int64_t window,
                             float scale);

}  // namespace tessera::kernels
