#include "kernels/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/check.h"
#include "kernels/cpu/thread_pool.h"

namespace tessera::kernels {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Selection key: NaN ranks below every number, so a bad logit can never produce a bad id.
float Key(float v) { return std::isnan(v) ? kNegInf : v; }

// Does (a, ia) rank before (b, ib)? Larger key first, ties to the lower index.
bool Before(float a, int32_t ia, float b, int32_t ib) {
  const float ka = Key(a), kb = Key(b);
  return ka > kb || (ka == kb && ia < ib);
}

float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void CheckRouteArgs(ConstTensor logits, const RoutingParams& p) {
  TESSERA_KCHECK(logits.type == DType::kF32 && logits.device == Device::kCpu && logits.rank == 2,
                 "Route: logits must be CPU f32 [T, E]");
  TESSERA_KCHECK(logits.dim(1) <= std::numeric_limits<int32_t>::max(), "Route: E beyond int32");
  TESSERA_KCHECK(ValidateRoutingParams(p, static_cast<int32_t>(logits.dim(1))).ok(),
                 "Route: invalid RoutingParams (ValidateRoutingParams at load)");
}

// A fixed-capacity list of the best `cap` (score, id) pairs seen, kept sorted best first.
// Capacity is top_k or topk_group: small, so insertion is the fast choice.
class TopList {
 public:
  void Reset(int32_t cap) {
    cap_ = cap;
    n_ = 0;
    score_.resize(cap);
    id_.resize(cap);
  }
  void Offer(float s, int32_t id) {
    if (n_ == cap_ && !Before(s, id, score_[n_ - 1], id_[n_ - 1])) return;
    int32_t i = n_ < cap_ ? n_++ : n_ - 1;
    for (; i > 0 && Before(s, id, score_[i - 1], id_[i - 1]); --i) {
      score_[i] = score_[i - 1];
      id_[i] = id_[i - 1];
    }
    score_[i] = s;
    id_[i] = id;
  }
  int32_t size() const { return n_; }
  int32_t id(int32_t i) const { return id_[i]; }

 private:
  int32_t cap_ = 0, n_ = 0;
  std::vector<float> score_;
  std::vector<int32_t> id_;
};

// Writes the chosen experts' final weights (from `weight_of` [E]) in output order:
// normalised and scaled, sorted by weight descending, ties to the lower id.
void Finish(int32_t* ids, float* w, const int32_t* chosen, const float* weight_of,
            const RoutingParams& p, float eps) {
  const int32_t k = p.top_k;
  float sum = 0;
  for (int32_t j = 0; j < k; ++j) sum += weight_of[chosen[j]];
  for (int32_t j = 0; j < k; ++j) {  // insertion sort of k items by (weight desc, id asc)
    const int32_t id = chosen[j];
    const float v = p.normalize_top_k ? weight_of[id] / (sum + eps) * p.scaling_factor
                                      : weight_of[id] * p.scaling_factor;
    int32_t i = j;
    for (; i > 0 && Before(v, id, w[i - 1], ids[i - 1]); --i) {
      w[i] = w[i - 1];
      ids[i] = ids[i - 1];
    }
    w[i] = v;
    ids[i] = id;
  }
}

// Per-method scoring: fills `weight_of` [E] (what the chosen experts are weighed by) and
// `choice` [E] (what they are chosen by), returning the eps added to the renormalising sum.
float Score(const float* logit, int32_t E, const RoutingParams& p, float* weight_of,
            float* choice) {
  switch (p.method) {
    case RoutingMethod::kSoftmaxTopK: {
      float max = kNegInf;
      for (int32_t e = 0; e < E; ++e) max = std::max(max, logit[e]);
      float sum = 0;
      for (int32_t e = 0; e < E; ++e) sum += (weight_of[e] = std::exp(logit[e] - max));
      for (int32_t e = 0; e < E; ++e) choice[e] = (weight_of[e] /= sum);
      return 0.0f;  // as Mixtral/Qwen: the chosen probabilities' sum is >= k/E > 0
    }
    case RoutingMethod::kSigmoidGroupedTopK:
      for (int32_t e = 0; e < E; ++e) {
        weight_of[e] = Sigmoid(logit[e]);
        choice[e] = weight_of[e] + (p.selection_bias ? p.selection_bias[e] : 0.0f);
      }
      return 1e-20f;  // as DeepSeek-V3's reference code
  }
  return 0.0f;  // unreachable: every method is handled above
}

}  // namespace

absl::Status ValidateRoutingParams(const RoutingParams& p, int32_t n_experts) {
  if (n_experts < 1) {
    return absl::InvalidArgumentError(absl::StrCat("MoE: ", n_experts, " experts"));
  }
  if (p.top_k < 1 || p.top_k > n_experts) {
    return absl::InvalidArgumentError(
        absl::StrCat("MoE routing: top_k ", p.top_k, " not in [1, ", n_experts, "]"));
  }
  if (!std::isfinite(p.scaling_factor)) {
    return absl::InvalidArgumentError("MoE routing: scaling_factor is not finite");
  }
  switch (p.method) {
    case RoutingMethod::kSoftmaxTopK:
      if (p.n_group != 1 || p.topk_group != 1 || p.selection_bias != nullptr) {
        return absl::InvalidArgumentError(
            "MoE routing: softmax top-k takes no expert groups and no selection bias");
      }
      return absl::OkStatus();
    case RoutingMethod::kSigmoidGroupedTopK:
      if (p.n_group < 1 || n_experts % p.n_group != 0) {
        return absl::InvalidArgumentError(absl::StrCat("MoE routing: n_group ", p.n_group,
                                                       " does not divide ", n_experts, " experts"));
      }
      if (p.topk_group < 1 || p.topk_group > p.n_group) {
        return absl::InvalidArgumentError(absl::StrCat("MoE routing: topk_group ", p.topk_group,
                                                       " not in [1, n_group=", p.n_group, "]"));
      }
      if (p.top_k > static_cast<int64_t>(p.topk_group) * (n_experts / p.n_group)) {
        return absl::InvalidArgumentError(
            absl::StrCat("MoE routing: top_k ", p.top_k, " exceeds the ", p.topk_group,
                         " kept groups' ", p.topk_group * (n_experts / p.n_group), " experts"));
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("MoE routing: unknown method");
}

void Route(int32_t* expert_ids, float* weights, ConstTensor logits, const RoutingParams& p) {
  CheckRouteArgs(logits, p);
  const int32_t E = static_cast<int32_t>(logits.dim(1));
  const int32_t k = p.top_k;
  ParallelFor(logits.dim(0), std::max<int64_t>(1, 65536 / (16 * E)), [&](int64_t t0, int64_t t1) {
    std::vector<float> weight_of(E), choice(E);
    std::vector<int32_t> chosen(k);
    std::vector<uint8_t> kept;
    TopList best, groups;
    for (int64_t t = t0; t < t1; ++t) {
      const float eps =
          Score(logits.as<const float>() + t * E, E, p, weight_of.data(), choice.data());
      best.Reset(k);
      if (p.n_group == 1) {
        for (int32_t e = 0; e < E; ++e) best.Offer(choice[e], e);
      } else {
        const int32_t gs = E / p.n_group;
        groups.Reset(p.topk_group);
        for (int32_t g = 0; g < p.n_group; ++g) {
          int32_t b1 = g * gs, b2 = -1;  // the group's best two by (choice, id)
          for (int32_t e = g * gs + 1; e < (g + 1) * gs; ++e) {
            if (Before(choice[e], e, choice[b1], b1)) {
              b2 = b1;
              b1 = e;
            } else if (b2 < 0 || Before(choice[e], e, choice[b2], b2)) {
              b2 = e;
            }
          }
          groups.Offer(choice[b1] + (b2 < 0 ? 0.0f : choice[b2]), g);
        }
        for (int32_t i = 0; i < groups.size(); ++i) {
          const int32_t g = groups.id(i);
          for (int32_t e = g * gs; e < (g + 1) * gs; ++e) best.Offer(choice[e], e);
        }
      }
      for (int32_t j = 0; j < k; ++j) chosen[j] = best.id(j);
      Finish(expert_ids + t * k, weights + t * k, chosen.data(), weight_of.data(), p, eps);
    }
  });
}

void RouteReference(int32_t* expert_ids, float* weights, ConstTensor logits,
                    const RoutingParams& p) {
  CheckRouteArgs(logits, p);
  const int32_t E = static_cast<int32_t>(logits.dim(1));
  const int32_t k = p.top_k;
  std::vector<float> weight_of(E), choice(E);
  for (int64_t t = 0; t < logits.dim(0); ++t) {
    // Scores written out again (not shared with Route), so a slip in one shows in the tests.
    const float* l = logits.as<const float>() + t * E;
    float eps = 0.0f;
    switch (p.method) {
      case RoutingMethod::kSoftmaxTopK: {
        float max = kNegInf, z = 0;
        for (int32_t e = 0; e < E; ++e) max = std::max(max, l[e]);
        for (int32_t e = 0; e < E; ++e) z += std::exp(l[e] - max);
        for (int32_t e = 0; e < E; ++e) weight_of[e] = choice[e] = std::exp(l[e] - max) / z;
        break;
      }
      case RoutingMethod::kSigmoidGroupedTopK:
        for (int32_t e = 0; e < E; ++e) {
          weight_of[e] = 1.0f / (1.0f + std::exp(-l[e]));
          choice[e] = weight_of[e] + (p.selection_bias == nullptr ? 0.0f : p.selection_bias[e]);
        }
        eps = 1e-20f;
        break;
    }
    const auto by_choice = [&](int32_t a, int32_t b) { return Before(choice[a], a, choice[b], b); };
    std::vector<int32_t> candidates;
    const int32_t gs = E / p.n_group;
    std::vector<float> group_score(p.n_group);
    std::vector<int32_t> group(p.n_group);
    for (int32_t g = 0; g < p.n_group; ++g) {
      std::vector<int32_t> members(gs);
      std::iota(members.begin(), members.end(), g * gs);
      std::sort(members.begin(), members.end(), by_choice);
      group_score[g] = 0;
      for (int32_t i = 0; i < std::min(gs, 2); ++i) group_score[g] += choice[members[i]];
      group[g] = g;
    }
    std::sort(group.begin(), group.end(),
              [&](int32_t a, int32_t b) { return Before(group_score[a], a, group_score[b], b); });
    for (int32_t i = 0; i < p.topk_group; ++i) {
      for (int32_t e = group[i] * gs; e < (group[i] + 1) * gs; ++e) candidates.push_back(e);
    }
    std::sort(candidates.begin(), candidates.end(), by_choice);
    std::vector<float> w(k);
    float sum = 0;
    for (int32_t j = 0; j < k; ++j) sum += weight_of[candidates[j]];
    std::vector<int32_t> order(candidates.begin(), candidates.begin() + k);
    for (int32_t j = 0; j < k; ++j) {
      w[j] = p.normalize_top_k ? weight_of[order[j]] / (sum + eps) * p.scaling_factor
                               : weight_of[order[j]] * p.scaling_factor;
    }
    std::vector<int32_t> idx(k);
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(),
              [&](int32_t a, int32_t b) { return Before(w[a], order[a], w[b], order[b]); });
    for (int32_t j = 0; j < k; ++j) {
      expert_ids[t * k + j] = order[idx[j]];
      weights[t * k + j] = w[idx[j]];
    }
  }
}

absl::StatusOr<ExpertGrouping> GroupByExpert(const int32_t* expert_ids, int64_t T, int32_t top_k,
                                             int32_t n_experts) {
  if (T < 0 || top_k < 1 || n_experts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("GroupByExpert: T=", T, " top_k=", top_k, " n_experts=", n_experts));
  }
  if (T > std::numeric_limits<int32_t>::max() / top_k) {
    return absl::InvalidArgumentError(
        absl::StrCat("GroupByExpert: ", T, " tokens x ", top_k, " choices exceeds int32 rows"));
  }
  const int64_t R = T * top_k;
  ExpertGrouping g;
  g.offsets.assign(n_experts + 1, 0);
  for (int64_t i = 0; i < R; ++i) {
    const int32_t e = expert_ids[i];
    if (e < 0 || e >= n_experts) {
      return absl::InvalidArgumentError(absl::StrCat("GroupByExpert: token ", i / top_k, " choice ",
                                                     i % top_k, ": expert id ", e, " outside [0, ",
                                                     n_experts, ")"));
    }
    ++g.offsets[e + 1];
  }
  for (int32_t e = 0; e < n_experts; ++e) g.offsets[e + 1] += g.offsets[e];
  g.rows.resize(R);
  g.slot.resize(R);
  g.grouped_row.resize(R);
  std::vector<int64_t> next(g.offsets.begin(), g.offsets.end() - 1);
  for (int64_t i = 0; i < R; ++i) {  // (token, slot) order: stable within each expert
    const int64_t r = next[expert_ids[i]]++;
    g.rows[r] = static_cast<int32_t>(i / top_k);
    g.slot[r] = static_cast<int32_t>(i % top_k);
    g.grouped_row[i] = static_cast<int32_t>(r);
  }
  return g;
}

void GatherByExpert(Tensor out, ConstTensor x, const ExpertGrouping& g) {
  TESSERA_KCHECK(out.type == DType::kF32 && x.type == DType::kF32 && out.device == Device::kCpu &&
                     x.device == Device::kCpu,
                 "GatherByExpert: CPU f32 tensors");
  const int64_t R = static_cast<int64_t>(g.rows.size()), H = x.cols();
  TESSERA_KCHECK(out.rows() == R && out.cols() == H, "GatherByExpert: out must be [R, H]");
  ParallelFor(R, std::max<int64_t>(1, 16384 / std::max<int64_t>(H, 1)),
              [&](int64_t r0, int64_t r1) {
                for (int64_t r = r0; r < r1; ++r) {
                  TESSERA_KCHECK(g.rows[r] >= 0 && g.rows[r] < x.rows(),
                                 "GatherByExpert: row out of range");
                  std::memcpy(out.as<float>() + r * H, x.as<const float>() + g.rows[r] * H,
                              H * sizeof(float));
                }
              });
}

void CombineFromExperts(Tensor out, ConstTensor y, const ExpertGrouping& g, const float* weights) {
  TESSERA_KCHECK(out.type == DType::kF32 && y.type == DType::kF32 && out.device == Device::kCpu &&
                     y.device == Device::kCpu,
                 "CombineFromExperts: CPU f32 tensors");
  const int64_t R = static_cast<int64_t>(g.grouped_row.size()), H = out.cols(), T = out.rows();
  TESSERA_KCHECK(y.rows() == R && y.cols() == H, "CombineFromExperts: y must be [R, H]");
  TESSERA_KCHECK(T == 0 ? R == 0 : R % T == 0, "CombineFromExperts: R must be T*k");
  TESSERA_KCHECK(out.data != y.data, "CombineFromExperts: out aliases y");
  const int64_t k = T == 0 ? 1 : R / T;
  ParallelFor(T, std::max<int64_t>(1, 16384 / std::max<int64_t>(H * k, 1)),
              [&](int64_t t0, int64_t t1) {
                for (int64_t t = t0; t < t1; ++t) {
                  float* o = out.as<float>() + t * H;
                  std::fill(o, o + H, 0.0f);
                  for (int64_t j = 0; j < k; ++j) {
                    const float w = weights[t * k + j];
                    const float* src = y.as<const float>() + g.grouped_row[t * k + j] * H;
                    for (int64_t h = 0; h < H; ++h) o[h] += w * src[h];
                  }
                }
              });
}

}  // namespace tessera::kernels
