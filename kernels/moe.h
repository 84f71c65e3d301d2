// Mixture-of-Experts building blocks: routing (which k experts each token goes to, with
// what weight) and the permutation that groups tokens by expert so each expert runs one
// matmul over all of its tokens.
//
// Dims: T tokens, H hidden, E experts, k top-k (RoutingParams::top_k), R = T*k routed rows.
//   logits [T, E] f32      expert_ids [T, k] int32      weights [T, k] f32
//
// Routing is fp32, one case per method (a model picks its method; there is no per-model if):
//   kSoftmaxTopK        p = softmax(logits) over all E; the k largest p; renormalised to sum
//                       1 iff normalize_top_k; times scaling_factor.
//                       Mixtral (normalize), Qwen2-MoE (normalize iff norm_topk_prob),
//                       Qwen3-MoE (normalize). n_group, topk_group and selection_bias must be
//                       left at their defaults.
//   kSigmoidGroupedTopK DeepSeek-V3: s = sigmoid(logits); b = s + selection_bias (bias only
//                       chooses, never weighs); the E experts form n_group consecutive groups
//                       of E/n_group; a group's score is the sum of its top-2 b (its top-1 if a
//                       group has one expert); the topk_group best groups are kept; the k best
//                       b among the kept groups' experts are chosen (experts of dropped groups
//                       are never candidates, as in DeepSeek's own inference code);
//                       weights = their s, renormalised (sum + 1e-20) iff normalize_top_k,
//                       times scaling_factor.
// Output order: per token, the k ids by descending weight, ties to the lower id. Every id
// is in [0, E) and a token's k ids are distinct, whatever the logits: NaN ranks below every
// number (its weight stays NaN). Ties in selection also go to the lower id (and lower group).
//
// Parameters come from a model's config, i.e. from outside: check them once at load with
// ValidateRoutingParams (a Status). Route and RouteReference CHECK them (caller bug).
// Route is the fast path (partial top-k selection, tokens split over the thread pool);
// RouteReference is the plain definition with full sorts. They agree exactly on ids and to
// f32 rounding on weights. Both are pure and thread-safe for distinct outputs.
//
// Grouping (GroupByExpert) is a stable counting sort of the R routed rows by expert; expert
// ids come from routing or, later, from other ranks, so an id outside [0, E) is reported as
// InvalidArgument (checked in every build type), never trusted.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/tensor.h"

namespace tessera::kernels {

enum class RoutingMethod { kSoftmaxTopK, kSigmoidGroupedTopK };

struct RoutingParams {
  RoutingMethod method = RoutingMethod::kSoftmaxTopK;
  int32_t top_k = 1;
  bool normalize_top_k = true;  // renormalise the chosen weights to sum 1
  // kSigmoidGroupedTopK only (see above).
  int32_t n_group = 1;
  int32_t topk_group = 1;
  float scaling_factor = 1.0f;            // both methods; 1 for Mixtral and Qwen
  const float* selection_bias = nullptr;  // [E] f32, not owned; null means zeros
};

// OK iff `p` is usable with `n_experts` experts: 1 <= top_k <= E; for kSoftmaxTopK
// n_group == topk_group == 1 and no bias; for kSigmoidGroupedTopK n_group divides E,
// 1 <= topk_group <= n_group and top_k <= topk_group * E / n_group; scaling_factor finite.
absl::Status ValidateRoutingParams(const RoutingParams& p, int32_t n_experts);

// expert_ids [T, k] int32, weights [T, k] f32 <- logits [T, E] f32 (CPU).
void Route(int32_t* expert_ids, float* weights, ConstTensor logits, const RoutingParams& p);
void RouteReference(int32_t* expert_ids, float* weights, ConstTensor logits,
                    const RoutingParams& p);

// The R = T*k routed rows sorted by expert. Grouped row i (in [0, R)) is token rows[i]'s
// choice slot[i]; expert e owns grouped rows [offsets[e], offsets[e+1]). Within an expert,
// rows are in (token, slot) order. grouped_row is the inverse: token t's choice j sits at
// grouped row grouped_row[t*k + j].
struct ExpertGrouping {
  std::vector<int64_t> offsets;      // [E+1], offsets[0] = 0, offsets[E] = R
  std::vector<int32_t> rows;         // [R] source token of each grouped row
  std::vector<int32_t> slot;         // [R] which of the token's k choices
  std::vector<int32_t> grouped_row;  // [R] inverse permutation, indexed t*k + j

  int64_t count(int32_t e) const { return offsets[e + 1] - offsets[e]; }
};

// expert_ids [T, k] -> grouping over n_experts. InvalidArgument for an id outside
// [0, n_experts), negative T, top_k < 1, n_experts < 1, or T*k beyond int32.
absl::StatusOr<ExpertGrouping> GroupByExpert(const int32_t* expert_ids, int64_t T, int32_t top_k,
                                             int32_t n_experts);

// out [R, H] f32 <- x [T, H] f32 rows: out[i] = x[g.rows[i]] (the dispatch gather).
void GatherByExpert(Tensor out, ConstTensor x, const ExpertGrouping& g);

// out [T, H] f32 <- y [R, H] f32 (expert outputs in grouped order), weights [T, k]:
//   out[t] = sum over j = 0..k-1, in that order, of weights[t*k + j] * y[g.grouped_row[t*k + j]].
// Overwrites out (the combine). out must not alias y.
void CombineFromExperts(Tensor out, ConstTensor y, const ExpertGrouping& g, const float* weights);

}  // namespace tessera::kernels
