// Paged KV cache: the storage of one rank's K/V, in fixed-size blocks of `block_size` token
// positions, and the block bookkeeping (serving::KvBlockManager) that says which blocks
// each sequence holds.
//
// Planning is pure and mutation happens in few, named places: PlanAppend() says whether a
// batch of appends fits and which blocks it takes (RESOURCE_EXHAUSTED, with the numbers, if
// not; INVALID_ARGUMENT for a sequence named twice); Reserve() attaches those blocks;
// Commit() advances the lengths once the step's K/V are written. A step that fails between
// Reserve and Commit leaves every sequence's length and stored K/V as they were (the blocks
// it reserved stay with their sequences and serve the retry). A worker rank mirrors the
// leader's cache by ApplyBlockOps() of the step plan's operations.
//
// Storage is of the shape's type (f32, or f16 / bf16: K/V rounded to nearest even as they
// are written, widened back to f32 by the attention kernel), laid out
// [layer][block][K|V][block_size][kv_dim], where kv_dim = Hkv_local * D (a shared_kv cache:
// [layer][block][block_size][kv_dim], V read from the K rows); Layer() views one layer for
// kernels::PagedAttention. Not thread-safe: the engine's step loop owns it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/buffer.h"
#include "kernels/paged_attention.h"
#include "runtime/serving/kv_block_manager.h"

namespace tessera {

using SeqId = serving::SeqId;

struct KvCacheShape {
  int64_t layers = 0;
  int64_t kv_dim = 0;  // Hkv_local * D
  int64_t block_size = 16;
  int64_t num_blocks = 0;
  kernels::DType type = kernels::DType::kF32;  // kF32, kF16 or kBF16
  // A latent cache (multi-head latent attention): each position stores one row, read as
  // both key and value (the value is the row's first elements), so a block has no V part.
  bool shared_kv = false;

  int64_t parts() const { return shared_kv ? 1 : 2; }  // K and V, or the one row
  // Bytes one token position takes over all layers.
  int64_t bytes_per_token() const;
};

// The KV element types a cache can store, by the --kv-type name ("f32", "f16", "bf16";
// case-insensitive); INVALID_ARGUMENT naming the value otherwise.
absl::StatusOr<kernels::DType> KvTypeFromName(absl::string_view name);
// Whether a cache can store `type` (F32, F16, BF16).
bool IsKvType(kernels::DType type);
// Bytes of one element of a KV type (4 or 2).
int64_t KvElementBytes(kernels::DType type);

class KvCache {
 public:
  // INVALID_ARGUMENT unless layers, kv_dim and block_size are positive, num_blocks is in
  // [1, INT32_MAX] and the type is F32, F16 or BF16; RESOURCE_EXHAUSTED, with the byte
  // count, if the storage is more than the memory available or cannot be allocated.
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(const KvCacheShape& shape);

  struct Append {
    SeqId seq;
    int64_t tokens;
  };
  struct Plan {
    std::vector<Append> appends;
    std::vector<int64_t> new_blocks;  // per append
    std::vector<serving::BlockOp> ops;
    uint64_t generation = 0;  // of the block manager the ops apply to
  };
  absl::StatusOr<Plan> PlanAppend(std::span<const Append> appends) const;
  // Attaches the plan's blocks; FAILED_PRECONDITION if the cache changed since planning.
  absl::Status Reserve(const Plan& plan);
  // Advances each sequence's length by its append (after Reserve).
  absl::Status Commit(const Plan& plan);
  // Reserve, then Commit.
  absl::Status Apply(const Plan& plan);
  // A worker's mirror of the leader's block operations.
  absl::Status ApplyBlockOps(uint64_t generation, std::span<const serving::BlockOp> ops);
  // Frees a sequence's blocks at once; INVALID_ARGUMENT for an unknown id.
  absl::Status Free(SeqId seq);

  int64_t length(SeqId seq) const { return blocks_.Length(seq); }  // 0 for unknown sequences
  int64_t free_blocks() const { return blocks_.free_blocks(); }
  int64_t capacity_tokens() const { return shape_.num_blocks * shape_.block_size; }
  const KvCacheShape& shape() const { return shape_; }
  const serving::KvBlockManager& blocks() const { return blocks_; }
  int64_t bytes() const { return storage_.bytes(); }

  // Stores k, v [n, kv_dim] f32 (converted to the cache's type) at positions
  // [pos, pos + n) of `seq`, which its blocks must cover (CHECKed: the engine reserves first).
  // A shared_kv cache stores k only (v must be null).
  void Write(int64_t layer, SeqId seq, int64_t pos, const float* k, const float* v, int64_t n);
  // One layer's blocks, for kernels::PagedAttention (kv_dim = kv_heads * D).
  kernels::PagedKv Layer(int64_t layer, int64_t kv_heads) const;

 private:
  KvCache(const KvCacheShape& shape, kernels::HostBuffer storage, serving::KvBlockManager blocks);
  // Element 0 of one block's K (kv 0) or V (kv 1) rows in `layer`.
  uint8_t* Block(int64_t layer, int32_t block, int kv) const;

  // Immutable after construction.
  KvCacheShape shape_;
  kernels::HostBuffer storage_;
  // Mutable state.
  serving::KvBlockManager blocks_;
};

}  // namespace tessera
