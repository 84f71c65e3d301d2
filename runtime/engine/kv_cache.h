// Paged KV cache: fixed-size blocks of `block_size` token positions, handed out to
// sequences through per-sequence block tables.
//
// Planning is pure and mutation happens in one place: PlanAppend() says whether a batch of
// appends fits and how many blocks each sequence needs (RESOURCE_EXHAUSTED, with the
// numbers, if not), Apply() carries a plan out. A scheduler can therefore test admission
// without touching the cache. Storage is f32, laid out [layer][block][K|V][block_size][kv_dim],
// where kv_dim = Hkv_local * D. Not thread-safe: the engine's step loop owns it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/buffer.h"

namespace tessera {

using SeqId = int64_t;

struct KvCacheShape {
  int64_t layers = 0;
  int64_t kv_dim = 0;  // Hkv_local * D
  int64_t block_size = 16;
  int64_t num_blocks = 0;
};

class KvCache {
 public:
  // INVALID_ARGUMENT unless layers, kv_dim and block_size are positive and num_blocks is in
  // [0, INT32_MAX]; RESOURCE_EXHAUSTED, with the byte count, if the storage is more than the
  // memory available or cannot be allocated.
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(const KvCacheShape& shape);

  struct Append {
    SeqId seq;
    int64_t tokens;
  };
  struct Plan {
    std::vector<Append> appends;
    std::vector<int64_t> new_blocks;  // per append
  };
  absl::StatusOr<Plan> PlanAppend(std::span<const Append> appends) const;
  void Apply(const Plan& plan);
  // Frees a sequence's blocks at once; unknown ids are ignored.
  void Free(SeqId seq);

  int64_t length(SeqId seq) const;  // 0 for unknown sequences
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t capacity_tokens() const { return shape_.num_blocks * shape_.block_size; }
  const KvCacheShape& shape() const { return shape_; }
  int64_t bytes() const { return storage_.bytes(); }

  // Stores k, v [n, kv_dim] f32 at positions [pos, pos + n) of `seq` (already planned).
  void Write(int64_t layer, SeqId seq, int64_t pos, const float* k, const float* v, int64_t n);
  // Copies positions [0, len) of `seq` into k, v [len, kv_dim].
  void Gather(int64_t layer, SeqId seq, int64_t len, float* k, float* v) const;

 private:
  struct Seq {
    int64_t length = 0;
    std::vector<int32_t> blocks;
  };
  KvCache(const KvCacheShape& shape, kernels::HostBuffer storage);
  float* Block(int64_t layer, int32_t block, int kv) const;

  // Immutable after construction.
  KvCacheShape shape_;
  kernels::HostBuffer storage_;
  // Mutable state.
  std::vector<int32_t> free_;
  std::map<SeqId, Seq> seqs_;
};

}  // namespace tessera
