#include "parallel/topology.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tessera::parallel {
namespace {

// Why tp cannot shard this model's attention and dense MLP, or "" if it can.
std::string TpProblem(int64_t tp, const ModelShape& m) {
  if (m.n_heads % tp != 0) {
    return absl::StrCat("tp=", tp, " does not divide ", m.n_heads, " attention heads");
  }
  if (tp % m.n_kv_heads != 0 && m.n_kv_heads % tp != 0) {
    return absl::StrCat("tp=", tp, " neither divides nor is a multiple of ", m.n_kv_heads,
                        " KV heads");
  }
  const int64_t o_cols = m.n_heads / tp * m.head_dim;  // row-parallel attention output
  if (o_cols % m.o_block != 0) {
    return absl::StrCat("tp=", tp, " leaves ", o_cols, " attention-output columns per rank, ",
                        "not whole blocks of ", m.o_block);
  }
  if (m.ffn > 0 && (m.ffn % tp != 0 || (m.ffn / tp) % m.down_block != 0)) {
    return absl::StrCat("tp=", tp, " does not split the MLP's ", m.ffn,
                        " features into whole blocks of ", m.down_block);
  }
  return "";
}

// Why ep cannot shard this model's experts over `world` ranks, or "" if it can.
std::string EpProblem(int64_t ep, int64_t world, const ModelShape& m) {
  if (world % ep != 0) return absl::StrCat("ep=", ep, " does not divide world ", world);
  if (m.n_experts == 0) {
    return ep == 1 ? "" : absl::StrCat("ep=", ep, " but the model has no experts");
  }
  if (m.n_experts % ep != 0) {
    return absl::StrCat("ep=", ep, " does not divide ", m.n_experts, " experts");
  }
  const int64_t moe_tp = world / ep;
  if (m.moe_ffn % moe_tp != 0 || (m.moe_ffn / moe_tp) % m.expert_down_block != 0) {
    return absl::StrCat("ep=", ep, " splits each expert over moe_tp=", moe_tp,
                        " ranks, which does not split its ", m.moe_ffn,
                        " features into whole blocks of ", m.expert_down_block);
  }
  return "";
}

std::string ValidTp(const ModelShape& m) {
  std::vector<int64_t> ok;
  for (int64_t t = 1; t <= m.n_heads; ++t) {
    if (TpProblem(t, m).empty()) ok.push_back(t);
  }
  return absl::StrCat("valid tp for this model: ", absl::StrJoin(ok, ", "));
}

std::string ValidEp(int64_t world, const ModelShape& m) {
  std::vector<int64_t> ok;
  for (int64_t e = 1; e <= world; ++e) {
    if (EpProblem(e, world, m).empty()) ok.push_back(e);
  }
  return absl::StrCat("valid ep for this model on ", world, " ranks: ", absl::StrJoin(ok, ", "));
}

absl::Status CheckShape(const ModelShape& m) {
  if (m.n_heads < 1 || m.n_kv_heads < 1 || m.n_heads % m.n_kv_heads != 0 || m.head_dim < 1 ||
      m.o_block < 1 || m.down_block < 1 || m.expert_down_block < 1 || m.ffn < 0 || m.n_experts < 0 || m.moe_ffn < 0 ||
      (m.n_experts > 0 && m.moe_ffn < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model shape is inconsistent: ", m.n_heads, " heads, ", m.n_kv_heads,
                     " KV heads, head dim ", m.head_dim, ", ffn ", m.ffn, ", ", m.n_experts,
                     " experts of ffn ", m.moe_ffn, ", blocks ", m.o_block, "/", m.down_block,
                     "/", m.expert_down_block));
  }
  return absl::OkStatus();
}

}  // namespace

const char* GroupName(GroupKind kind) {
  switch (kind) {
    case GroupKind::kTp:
      return "tp";
    case GroupKind::kCp:
      return "cp";
    case GroupKind::kEp:
      return "ep";
    case GroupKind::kMoeTp:
      return "moe_tp";
  }
  return "?";  // unreachable
}

absl::Status CheckTensorParallel(int64_t tp, const ModelShape& m) {
  if (tp < 1) return absl::InvalidArgumentError(absl::StrCat("tp must be >= 1, got ", tp));
  if (absl::Status s = CheckShape(m); !s.ok()) return s;
  if (std::string p = TpProblem(tp, m); !p.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(p, "; ", ValidTp(m)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Topology> Topology::Make(int world, int tp, int ep, int cp, const ModelShape& m) {
  if (world < 1 || tp < 1 || ep < 1 || cp < 1) {
    return absl::InvalidArgumentError(absl::StrCat("world, tp, ep and cp must be >= 1, got world=",
                                                   world, " tp=", tp, " ep=", ep, " cp=", cp));
  }
  if (absl::Status s = CheckShape(m); !s.ok()) return s;
  if (static_cast<int64_t>(cp) * tp != world) {
    std::vector<std::string> pairs;
    for (int t = 1; t <= world; ++t) {
      if (world % t == 0 && TpProblem(t, m).empty())
        pairs.push_back(absl::StrCat(world / t, "x", t));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("world ", world, " is not cp × tp = ", cp, " × ", tp,
                     "; layouts cp×tp valid for this model on ", world,
                     " ranks: ", pairs.empty() ? "none" : absl::StrJoin(pairs, ", ")));
  }
  if (absl::Status s = CheckTensorParallel(tp, m); !s.ok()) return s;
  if (std::string p = EpProblem(ep, world, m); !p.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(p, "; ", ValidEp(world, m)));
  }
  return Topology{.cp = cp, .tp = tp, .ep = ep};
}

std::vector<int> Topology::Group(GroupKind k, int r) const {
  const int n = group_size(k);
  std::vector<int> ranks(n);
  for (int i = 0; i < n; ++i) {
    switch (k) {
      case GroupKind::kTp:
        ranks[i] = cp_rank(r) * tp + i;
        break;
      case GroupKind::kCp:
        ranks[i] = tp_rank(r) + i * tp;
        break;
      case GroupKind::kEp:
        ranks[i] = moe_tp_rank(r) + i * moe_tp();
        break;
      case GroupKind::kMoeTp:
        ranks[i] = ep_rank(r) * moe_tp() + i;
        break;
    }
  }
  return ranks;
}

Range Topology::QueryHeads(const ModelShape& m, int t) const {
  const int64_t per = m.n_heads / tp;
  return {t * per, (t + 1) * per};
}

Range Topology::KvHeads(const ModelShape& m, int t) const {
  if (tp <= m.n_kv_heads) {
    const int64_t per = m.n_kv_heads / tp;
    return {t * per, (t + 1) * per};
  }
  const int64_t replicas = tp / m.n_kv_heads;
  return {t / replicas, t / replicas + 1};
}

Range Topology::Experts(const ModelShape& m, int e) const {
  const int64_t per = m.n_experts / ep;
  return {e * per, (e + 1) * per};
}

}  // namespace tessera::parallel
