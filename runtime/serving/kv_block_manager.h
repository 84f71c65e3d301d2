// KV block manager: the bookkeeping of a replica's paged KV cache — which fixed-size blocks
// each sequence holds, how many sequences share each block, which blocks are free. It owns
// no KV memory: the storage is indexed by the block ids it hands out.
//
// One manager per replica. The leader's scheduler plans against it and every rank holds a
// mirror that changes only by Apply() of the block operations in a step plan, so all ranks
// agree on every block table without ever sending one. Planning is pure (BlockPlanner reads
// the manager and an overlay of what the step already planned); Apply() is the one mutation.
//
// Apply() is all or nothing: the operations are validated in full first (generation stamp,
// sequence ids, block ids, reference counts, capacities), and a step that fails validation
// leaves the manager exactly as it was. Every successful Apply() advances the generation,
// so a stale or replayed plan (stamped with an older generation) is refused.
//
// Not thread-safe: the leader's step loop (or a worker's loop) owns it.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tessera::serving {

using SeqId = int64_t;

// One block operation of a step plan. Kinds are wire values: never renumber.
struct BlockOp {
  enum class Kind : uint8_t {
    kAllocate = 1,  // append `blocks` (free ones) to `seq`'s table; creates `seq` if new
    kFree = 2,      // release every block of `seq` and forget it (finished or cancelled)
    kPreempt = 3,   // the same as kFree for the blocks; the scheduler will recompute `seq`
    kFork = 4,      // new `seq` starts sharing the first `count` blocks of `parent`
  };
  Kind kind = Kind::kAllocate;
  SeqId seq = 0;
  SeqId parent = 0;             // kFork
  int64_t count = 0;            // kFork: blocks shared
  std::vector<int32_t> blocks = {};  // kAllocate

  bool operator==(const BlockOp&) const = default;
};

// A name for messages: "allocate", "free", "preempt", "fork"; "kind N" for others.
std::string KindName(BlockOp::Kind kind);
// Whether `kind` is one of the kinds above (a value read off the wire may not be).
bool IsKnown(BlockOp::Kind kind);

class KvBlockManager {
 public:
  // `num_blocks` blocks of `block_size` token positions each (both >= 1).
  static absl::StatusOr<KvBlockManager> Create(int64_t num_blocks, int64_t block_size);

  // Validates `ops` against the state at `generation` and applies them all, or returns the
  // first problem (FailedPrecondition for a stale generation, InvalidArgument for an op that
  // does not fit the state) and changes nothing. Each op names the step's sequences at most
  // once, except that a sequence freed may not be used again in the same step.
  absl::Status Apply(uint64_t generation, std::span<const BlockOp> ops);

  // Sets the number of token positions `seq` has written; it must fit in its blocks.
  absl::Status SetLength(SeqId seq, int64_t length);

  uint64_t generation() const { return generation_; }
  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return static_cast<int64_t>(refs_.size()); }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t num_seqs() const { return static_cast<int64_t>(seqs_.size()); }
  bool Has(SeqId seq) const { return seqs_.count(seq) != 0; }
  // Empty for an unknown sequence.
  std::span<const int32_t> BlockTable(SeqId seq) const;
  int64_t Length(SeqId seq) const;    // 0 for an unknown sequence
  int32_t RefCount(int32_t block) const;  // 0 for an id out of range
  // Blocks needed to hold `tokens` positions.
  int64_t BlocksFor(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }

 private:
  friend class BlockPlanner;
  KvBlockManager(int64_t num_blocks, int64_t block_size);

  struct Seq {
    int64_t length = 0;
    std::vector<int32_t> blocks;
  };

  // Immutable after construction.
  int64_t block_size_ = 0;
  // Mutable state, changed only by Apply() and SetLength().
  uint64_t generation_ = 0;
  std::vector<int32_t> refs_;  // per block: sequences holding it
  std::set<int32_t> free_;     // blocks with refs_ == 0, lowest first
  std::map<SeqId, Seq> seqs_;
};

// Plans one step's block operations against a manager without changing it: each call sees
// the effect of the calls before it. The leader builds the step's ops with it, then every
// rank applies them. Borrows the manager, which must not change while the planner lives.
class BlockPlanner {
 public:
  explicit BlockPlanner(const KvBlockManager& manager) : m_(manager) {}

  // Each sequence takes part in at most one call per step (InvalidArgument otherwise).
  // Grows `seq` (new or existing) to hold `tokens` positions, taking the lowest free
  // blocks (blocks freed earlier in the step included). ResourceExhausted, with the
  // numbers, when too few are free; nothing is planned then.
  absl::Status Reserve(SeqId seq, int64_t tokens);
  // Frees (or preempts) `seq`; InvalidArgument for an unknown sequence.
  absl::Status Release(SeqId seq, bool preempt = false);
  // New `seq` sharing the first `count` blocks of existing `parent` (prefix sharing).
  absl::Status Fork(SeqId seq, SeqId parent, int64_t count);

  // Blocks free once the ops planned so far are applied.
  int64_t free_blocks() const;
  const std::vector<BlockOp>& ops() const { return ops_; }
  std::vector<BlockOp> TakeOps() { return std::move(ops_); }

 private:
  int32_t Ref(int32_t block) const;
  absl::Status Claim(SeqId seq);

  const KvBlockManager& m_;
  std::vector<BlockOp> ops_;
  std::map<int32_t, int32_t> refs_;     // reference counts this plan changes (new values)
  std::set<SeqId> used_;                // sequences this step already names
};

}  // namespace tessera::serving
