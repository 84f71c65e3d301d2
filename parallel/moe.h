// A Mixture-of-Experts FFN block (Mixtral, Qwen2/3-MoE, DeepSeek-V3 routed + shared experts),
// shaped for expert parallelism: the layer owns its ranks' experts stacked, the replicated
// fp32 router, an optional shared expert, and a logical -> physical expert table, and is
// handed the communicator of its expert-parallel group.
//
// Dims: T tokens, H hidden, E experts (logical), E_local experts held here, k top-k,
//       F expert FFN size, Fs shared-expert FFN size.
// Expert FFN: y = down(silu(gate(x)) * up(x)). Block output, per token t:
//   out[t] = sum_j w[t,j] * expert_{id[t,j]}(x[t])  +  [sigmoid(x[t]·g)] * shared(x[t])
// with (id, w) from kernels::Route (see kernels/moe.h for each routing method).
//
// Forward: router logits (one MatMul, f32) -> Route -> GroupByExpert -> gather x by expert
// -> per expert with >= 1 token, one MatMul per projection over all its tokens -> combine
// (weighted sum back to each token, in choice order) -> + shared expert. Dropless (no
// capacity limit). An expert with no tokens is not read at all, so a decode step reads only
// its chosen experts' weights (bytes_read_last_forward() says how many bytes).
//
// Placement (one-rank group, the only one supported today): in: Replicated [T, H] ->
// out: Replicated [T, H], no communication. Planned: ep > 1 dispatches with AllToAllV
// (counts, then payload) and combines back to the token owners, or, with replicated tokens,
// runs local experts and ends in one all-reduce; physical_of_logical then maps experts to
// (rank, slot) and may replicate hot ones. Create refuses a group of more than one rank.
//
// Thread-safety: Forward mutates router statistics and scratch, so one thread drives a
// layer at a time (as with its communicator). Weights are immutable after construction.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/buffer.h"
#include "kernels/moe.h"
#include "parallel/communicator.h"

namespace tessera::parallel {

struct SharedExpertWeights {
  kernels::OwnedTensor gate;  // [Fs, H] any DType
  kernels::OwnedTensor up;    // [Fs, H] any DType
  kernels::OwnedTensor down;  // [H, Fs] any DType
  // Qwen2-MoE's shared_expert_gate: the shared output is scaled by sigmoid(x · g).
  std::optional<kernels::OwnedTensor> sigmoid_gate;  // [1, H] any DType
};

struct MoeWeights {
  kernels::OwnedTensor router;  // [E, H] f32, replicated on every rank
  // This rank's experts, stacked; expert e's matrix is a view of rows [e*F, (e+1)*F) (gate,
  // up) or [e*H, (e+1)*H) (down). Each of the three may have its own DType.
  kernels::OwnedTensor gate;  // [E_local, F, H]
  kernels::OwnedTensor up;    // [E_local, F, H]
  kernels::OwnedTensor down;  // [E_local, H, F]
  // DeepSeek-V3's e_score_correction_bias (selection only); owned here, so
  // RoutingParams::selection_bias must be left null when creating the layer.
  std::optional<kernels::OwnedTensor> selection_bias;  // [E] f32
  std::optional<SharedExpertWeights> shared;
};

class MoeLayer {
 public:
  // Checks every shape and type (weights come from a checkpoint) and the routing parameters
  // (from its config). `comm` (not owned, must outlive the layer) must be a one-rank group
  // for now: larger groups are Unimplemented.
  static absl::StatusOr<std::unique_ptr<MoeLayer>> Create(MoeWeights weights,
                                                          const kernels::RoutingParams& routing,
                                                          Communicator* comm);

  MoeLayer(const MoeLayer&) = delete;
  MoeLayer& operator=(const MoeLayer&) = delete;

  // out [T, H] f32 <- x [T, H] f32 (CPU); out must not alias x. InvalidArgument on a shape
  // mismatch; any communicator failure is returned as is.
  absl::Status Forward(kernels::Tensor out, kernels::ConstTensor x);

  int64_t hidden() const { return hidden_; }
  int64_t expert_ffn() const { return ffn_; }
  int32_t num_experts() const { return num_experts_; }
  const kernels::RoutingParams& routing() const { return routing_; }
  // Identity today (one rank holds every expert): physical slot of each logical expert.
  const std::vector<int32_t>& physical_of_logical() const { return physical_of_logical_; }

  // Weight bytes the last Forward read: router + the experts that got >= 1 token (their
  // gate, up and down slices) + the shared expert (and its gate), if any.
  int64_t bytes_read_last_forward() const { return bytes_read_last_forward_; }
  // Routed (token, choice) pairs per logical expert [E], summed over Forward calls since
  // construction or the last ResetTokensPerExpert.
  const std::vector<int64_t>& tokens_per_expert() const { return tokens_per_expert_; }
  void ResetTokensPerExpert();

  int64_t bytes() const;  // resident weight bytes

 private:
  MoeLayer(MoeWeights weights, const kernels::RoutingParams& routing, Communicator* comm);
  // Expert `e`'s [rows, cols] matrix inside a stacked [E_local, rows, cols] tensor.
  static kernels::ConstTensor Slice(const kernels::OwnedTensor& stacked, int32_t e);
  static int64_t SliceBytes(const kernels::OwnedTensor& stacked);
  void SharedForward(kernels::Tensor out, kernels::ConstTensor x);

  // Immutable after construction.
  MoeWeights w_;
  kernels::RoutingParams routing_;  // selection_bias points into w_.selection_bias
  Communicator* comm_ = nullptr;    // not owned
  int64_t hidden_ = 0, ffn_ = 0;
  int32_t num_experts_ = 0, local_experts_ = 0;
  std::vector<int32_t> physical_of_logical_;  // [E]

  // Mutated by Forward (one thread at a time).
  std::vector<int64_t> tokens_per_expert_;  // [E]
  int64_t bytes_read_last_forward_ = 0;
  // Scratch, grown as needed and reused across calls (GroupByExpert's index vectors are
  // still allocated per call: R = T*k ints, small next to the activations).
  std::vector<float> logits_, route_w_, xg_, yg_, h_gate_, h_up_, shared_;
  std::vector<int32_t> ids_, physical_ids_;
};

}  // namespace tessera::parallel
