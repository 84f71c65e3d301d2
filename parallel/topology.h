// The rank grid of one replica (DESIGN §2) as a pure value type: which group each rank is
// in, what it holds. No MPI, no globals: tested exhaustively without processes.
//
// Layout. World W = cp × tp, TP innermost, so a tp group is tp adjacent ranks (one NVLink
// box):
//   tp_rank(r) = r % tp            tp group of r = { cp_rank(r)·tp + i : i < tp }
//   cp_rank(r) = r / tp            cp group of r = { tp_rank(r) + k·tp : k < cp }
// MoE layers regroup the same W ranks as ep × moe_tp (moe_tp = W / ep), moe_tp innermost, so
// each expert's FFN is split over moe_tp adjacent ranks (like TP; when ep = cp the moe_tp
// groups are the tp groups):
//   moe_tp_rank(r) = r % moe_tp    moe_tp group of r = { ep_rank(r)·moe_tp + i : i < moe_tp }
//   ep_rank(r) = r / moe_tp        ep group of r = { moe_tp_rank(r) + k·moe_tp : k < ep }
// The ep group (one rank per expert shard, same moe_tp_rank) is where all-to-all dispatch
// runs; ep rank e owns experts [e·E/ep, (e+1)·E/ep).
//
// Heads. tp rank t holds query heads [t·Hq/tp, (t+1)·Hq/tp). If tp <= Hkv it holds KV heads
// [t·Hkv/tp, (t+1)·Hkv/tp); if tp > Hkv (tp a multiple of Hkv) each KV head is replicated on
// tp/Hkv adjacent ranks (as vLLM does) and rank t holds KV head t / (tp/Hkv), the one its
// query heads attend with.
//
// Thread-safety: immutable values; every function is pure.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace tessera::parallel {

// What Topology::Make checks a layout against; a plain mirror of the model config so that
// parallel/ does not depend on runtime/. Counts of 0 mean "not in this model".
struct ModelShape {
  int64_t n_heads = 1;     // Hq
  int64_t n_kv_heads = 1;  // Hkv
  int64_t head_dim = 1;    // D
  int64_t ffn = 0;         // dense MLP intermediate size (0: every layer is MoE)
  int64_t n_experts = 0;   // E (0: dense model)
  int64_t moe_ffn = 0;     // one expert's intermediate size
  int64_t vocab = 0;       // V (vocab-parallel embedding and LM head: may be uneven)
  // Elements per block of the storage type (1 for F32/F16/BF16, 32 for Q8_0, 256 for
  // K-quants) of the weights a row-parallel layer splits by columns, the largest over the
  // layers: each rank's K/tp columns must be whole blocks. One per kind of weight, since a
  // file may store them differently (llama.cpp writes a 576-column attention output in a
  // 32-block type where Q4_K does not fit, and the MLP's down projection in Q4_K).
  int64_t o_block = 1;            // attention output
  int64_t down_block = 1;         // dense MLP down projection
  int64_t expert_down_block = 1;  // routed experts' down projections
};

// The tensor-parallel rules, in one place (Topology::Make and Transformer::Load both ask):
// tp divides the attention heads, divides or is a multiple of the KV heads, and splits the
// attention output's columns and the dense MLP into whole weight blocks. The vocabulary
// may be uneven (the last vocab-parallel shards are padded). InvalidArgument naming the
// first rule broken and the tp values that would work.
absl::Status CheckTensorParallel(int64_t tp, const ModelShape& m);

enum class GroupKind : uint8_t { kTp, kCp, kEp, kMoeTp };
const char* GroupName(GroupKind kind);  // "tp", "cp", "ep", "moe_tp"

struct Range {
  int64_t begin = 0;
  int64_t end = 0;  // exclusive
  friend bool operator==(const Range&, const Range&) = default;
};

// An aggregate so that tests can spell `Topology{.cp = 2, .tp = 2, .ep = 4}`; the getters
// assume a layout Make() accepted (cp, tp, ep >= 1, ep divides cp·tp).
struct Topology {
  int cp = 1;
  int tp = 1;
  int ep = 1;

  // Checks a layout for a world of `world` ranks and a model. Refusals say what would
  // work, e.g. "tp=4 does not divide 9 attention heads; valid tp for this model: 1, 3, 9".
  static absl::StatusOr<Topology> Make(int world, int tp, int ep, int cp, const ModelShape& model);

  constexpr int world() const { return cp * tp; }
  constexpr int moe_tp() const { return world() / ep; }

  constexpr int tp_rank(int r) const { return r % tp; }
  constexpr int cp_rank(int r) const { return r / tp; }
  constexpr int moe_tp_rank(int r) const { return r % moe_tp(); }
  constexpr int ep_rank(int r) const { return r / moe_tp(); }

  constexpr int group_size(GroupKind k) const {
    switch (k) {
      case GroupKind::kTp:
        return tp;
      case GroupKind::kCp:
        return cp;
      case GroupKind::kEp:
        return ep;
      case GroupKind::kMoeTp:
        return moe_tp();
    }
    return 0;  // unreachable
  }
  constexpr int num_groups(GroupKind k) const { return world() / group_size(k); }
  // Which group of kind k rank r is in, 0 <= index < num_groups(k) (an MPI split colour).
  constexpr int group_index(GroupKind k, int r) const {
    switch (k) {
      case GroupKind::kTp:
        return cp_rank(r);
      case GroupKind::kCp:
        return tp_rank(r);
      case GroupKind::kEp:
        return moe_tp_rank(r);
      case GroupKind::kMoeTp:
        return ep_rank(r);
    }
    return 0;  // unreachable
  }
  // r's rank inside that group (an MPI split key).
  constexpr int rank_in_group(GroupKind k, int r) const {
    switch (k) {
      case GroupKind::kTp:
        return tp_rank(r);
      case GroupKind::kCp:
        return cp_rank(r);
      case GroupKind::kEp:
        return ep_rank(r);
      case GroupKind::kMoeTp:
        return moe_tp_rank(r);
    }
    return 0;  // unreachable
  }
  // World ranks of r's group of kind k, in group-rank order.
  std::vector<int> Group(GroupKind k, int r) const;
  std::vector<int> TpGroup(int r) const { return Group(GroupKind::kTp, r); }
  std::vector<int> CpGroup(int r) const { return Group(GroupKind::kCp, r); }
  std::vector<int> EpGroup(int r) const { return Group(GroupKind::kEp, r); }
  std::vector<int> MoeTpGroup(int r) const { return Group(GroupKind::kMoeTp, r); }

  // What tp rank t holds of a model Make() accepted (see the header comment).
  Range QueryHeads(const ModelShape& m, int t) const;
  Range KvHeads(const ModelShape& m, int t) const;
  // Experts owned by ep rank e.
  Range Experts(const ModelShape& m, int e) const;

  friend bool operator==(const Topology&, const Topology&) = default;
};

}  // namespace tessera::parallel
