#include "runtime/serving/kv_block_manager.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tessera::serving {

std::string KindName(BlockOp::Kind kind) {
  switch (kind) {
    case BlockOp::Kind::kAllocate: return "allocate";
    case BlockOp::Kind::kFree: return "free";
    case BlockOp::Kind::kPreempt: return "preempt";
    case BlockOp::Kind::kFork: return "fork";
  }
  return absl::StrCat("kind ", static_cast<int>(kind));
}

bool IsKnown(BlockOp::Kind kind) {
  switch (kind) {
    case BlockOp::Kind::kAllocate:
    case BlockOp::Kind::kFree:
    case BlockOp::Kind::kPreempt:
    case BlockOp::Kind::kFork:
      return true;
  }
  return false;
}

absl::StatusOr<KvBlockManager> KvBlockManager::Create(int64_t num_blocks, int64_t block_size) {
  if (num_blocks < 1 || num_blocks > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV block count ", num_blocks, " is out of range [1, ", INT32_MAX, "]"));
  }
  if (block_size < 1 || block_size > (int64_t{1} << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV block size ", block_size, " is out of range [1, 1048576]"));
  }
  return KvBlockManager(num_blocks, block_size);
}

KvBlockManager::KvBlockManager(int64_t num_blocks, int64_t block_size)
    : block_size_(block_size), refs_(num_blocks, 0) {
  for (int32_t b = 0; b < num_blocks; ++b) free_.insert(free_.end(), b);
}

std::span<const int32_t> KvBlockManager::BlockTable(SeqId seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? std::span<const int32_t>() : std::span<const int32_t>(it->second.blocks);
}

int64_t KvBlockManager::Length(SeqId seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? 0 : it->second.length;
}

int32_t KvBlockManager::RefCount(int32_t block) const {
  return block >= 0 && block < num_blocks() ? refs_[block] : 0;
}

absl::Status KvBlockManager::SetLength(SeqId seq, int64_t length) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("KV length of unknown sequence ", seq));
  }
  const int64_t capacity = static_cast<int64_t>(it->second.blocks.size()) * block_size_;
  if (length < 0 || length > capacity) {
    return absl::InvalidArgumentError(absl::StrCat("sequence ", seq, ": length ", length,
                                                   " does not fit its ", it->second.blocks.size(),
                                                   " blocks (", capacity, " positions)"));
  }
  it->second.length = length;
  return absl::OkStatus();
}

absl::Status KvBlockManager::Apply(uint64_t generation, std::span<const BlockOp> ops) {
  if (generation != generation_) {
    return absl::FailedPreconditionError(
        absl::StrCat("stale step plan: stamped with KV generation ", generation,
                     ", the block manager is at ", generation_));
  }
  // Phase 1: the whole step against overlays of the state; nothing changes on error.
  std::map<int32_t, int32_t> refs;             // new reference counts of touched blocks
  std::map<SeqId, std::optional<Seq>> seqs;    // new state of touched sequences
  auto ref = [&](int32_t b) {
    auto it = refs.find(b);
    return it != refs.end() ? it->second : refs_[b];
  };
  std::set<SeqId> named;
  for (size_t i = 0; i < ops.size(); ++i) {
    const BlockOp& op = ops[i];
    auto bad = [&](auto&&... parts) {
      return absl::InvalidArgumentError(
          absl::StrCat("block op ", i, " (", KindName(op.kind), " sequence ", op.seq, "): ", parts...));
    };
    // Kinds come off the wire: the plan decoder refuses unknown ones, and so does this.
    if (!IsKnown(op.kind)) return bad("unknown operation kind");
    if (!named.insert(op.seq).second) return bad("the sequence is named twice in one step");
    auto base = seqs_.find(op.seq);
    const bool exists = base != seqs_.end();
    switch (op.kind) {
      case BlockOp::Kind::kAllocate: {
        if (op.blocks.empty()) return bad("no blocks");
        Seq s = exists ? base->second : Seq{};
        if (s.blocks.size() + op.blocks.size() > refs_.size()) return bad("more blocks than exist");
        for (int32_t b : op.blocks) {
          if (b < 0 || b >= num_blocks()) {
            return bad("block ", b, " is out of range [0, ", num_blocks(), ")");
          }
          if (ref(b) != 0) return bad("block ", b, " is not free");
          refs[b] = 1;
          s.blocks.push_back(b);
        }
        seqs[op.seq] = std::move(s);
        break;
      }
      case BlockOp::Kind::kFree:
      case BlockOp::Kind::kPreempt:
        if (!exists) return bad("unknown sequence");
        for (int32_t b : base->second.blocks) refs[b] = ref(b) - 1;
        seqs[op.seq] = std::nullopt;
        break;
      case BlockOp::Kind::kFork: {
        if (exists) return bad("the sequence already exists");
        if (named.count(op.parent) != 0) return bad("parent ", op.parent, " changes in this step");
        auto parent = seqs_.find(op.parent);
        if (parent == seqs_.end()) return bad("unknown parent ", op.parent);
        const auto& pb = parent->second.blocks;
        if (op.count < 1 || op.count > static_cast<int64_t>(pb.size())) {
          return bad("shares ", op.count, " blocks; parent ", op.parent, " has ", pb.size());
        }
        Seq s;
        s.blocks.assign(pb.begin(), pb.begin() + op.count);
        s.length = std::min(parent->second.length, op.count * block_size_);
        for (int32_t b : s.blocks) refs[b] = ref(b) + 1;
        seqs[op.seq] = std::move(s);
        break;
      }
    }
  }
  // Phase 2: commit (cannot fail).
  for (const auto& [b, r] : refs) {
    if (r == 0) {
      free_.insert(b);
    } else {
      free_.erase(b);
    }
    refs_[b] = r;
  }
  for (auto& [id, s] : seqs) {
    if (s) {
      seqs_[id] = *std::move(s);
    } else {
      seqs_.erase(id);
    }
  }
  ++generation_;
  return absl::OkStatus();
}

int32_t BlockPlanner::Ref(int32_t block) const {
  auto it = refs_.find(block);
  return it != refs_.end() ? it->second : m_.refs_[block];
}

absl::Status BlockPlanner::Claim(SeqId seq) {
  if (!used_.insert(seq).second) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence ", seq, " is planned twice in one step"));
  }
  return absl::OkStatus();
}

int64_t BlockPlanner::free_blocks() const {
  int64_t n = m_.free_blocks();
  for (const auto& [b, r] : refs_) n += (m_.refs_[b] != 0 ? 1 : 0) - (r != 0 ? 1 : 0);
  return n;
}

absl::Status BlockPlanner::Reserve(SeqId seq, int64_t tokens) {
  if (tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("sequence ", seq, ": ", tokens, " tokens"));
  }
  if (used_.count(seq) != 0) return Claim(seq);
  auto base = m_.seqs_.find(seq);
  const int64_t held = base == m_.seqs_.end() ? 0 : static_cast<int64_t>(base->second.blocks.size());
  const int64_t need = m_.BlocksFor(tokens) - held;
  if (need <= 0) return Claim(seq);
  // The lowest blocks free after the ops so far: free at the start of the step and not
  // taken, or freed by this step.
  std::vector<int32_t> picked;
  auto zero_it = refs_.begin();
  auto free_it = m_.free_.begin();
  auto next_zero = [&]() -> std::optional<int32_t> {
    while (zero_it != refs_.end() && (zero_it->second != 0 || m_.refs_[zero_it->first] == 0)) {
      ++zero_it;
    }
    return zero_it == refs_.end() ? std::nullopt : std::optional<int32_t>(zero_it->first);
  };
  auto next_free = [&]() -> std::optional<int32_t> {
    while (free_it != m_.free_.end() && Ref(*free_it) != 0) ++free_it;
    return free_it == m_.free_.end() ? std::nullopt : std::optional<int32_t>(*free_it);
  };
  while (static_cast<int64_t>(picked.size()) < need) {
    const std::optional<int32_t> z = next_zero(), f = next_free();
    if (!z && !f) break;
    if (f && (!z || *f < *z)) {
      picked.push_back(*f);
      ++free_it;
    } else {
      picked.push_back(*z);
      ++zero_it;
    }
  }
  if (static_cast<int64_t>(picked.size()) < need) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "KV cache full: sequence ", seq, " needs ", need, " more blocks for ", tokens,
        " tokens; ", free_blocks(), " of ", m_.num_blocks(), " blocks are free"));
  }
  for (int32_t b : picked) refs_[b] = 1;
  ops_.push_back({.kind = BlockOp::Kind::kAllocate, .seq = seq, .blocks = std::move(picked)});
  return Claim(seq);
}

absl::Status BlockPlanner::Release(SeqId seq, bool preempt) {
  auto base = m_.seqs_.find(seq);
  if (base == m_.seqs_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot free unknown sequence ", seq));
  }
  if (absl::Status s = Claim(seq); !s.ok()) return s;
  for (int32_t b : base->second.blocks) refs_[b] = Ref(b) - 1;
  ops_.push_back({.kind = preempt ? BlockOp::Kind::kPreempt : BlockOp::Kind::kFree, .seq = seq});
  return absl::OkStatus();
}

absl::Status BlockPlanner::Fork(SeqId seq, SeqId parent, int64_t count) {
  auto p = m_.seqs_.find(parent);
  if (p == m_.seqs_.end() || used_.count(parent) != 0 || m_.seqs_.count(seq) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot fork sequence ", seq, " from ", parent,
        ": the parent must exist and be unchanged in this step, the child must be new"));
  }
  if (count < 1 || count > static_cast<int64_t>(p->second.blocks.size())) {
    return absl::InvalidArgumentError(absl::StrCat("fork of ", seq, " shares ", count,
                                                   " blocks; parent ", parent, " has ",
                                                   p->second.blocks.size()));
  }
  if (absl::Status s = Claim(seq); !s.ok()) return s;
  for (int64_t i = 0; i < count; ++i) {
    const int32_t b = p->second.blocks[i];
    refs_[b] = Ref(b) + 1;
  }
  ops_.push_back({.kind = BlockOp::Kind::kFork, .seq = seq, .parent = parent, .count = count});
  return absl::OkStatus();
}

}  // namespace tessera::serving
