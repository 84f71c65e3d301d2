// A Mixture-of-Experts FFN block (Mixtral, Qwen2/3-MoE, DeepSeek-V3 routed + shared experts),
// shaped for expert parallelism: the layer owns its rank's experts stacked, the replicated
// fp32 router, an optional shared expert, and a logical -> physical expert table, and is
// handed the communicator of its expert-parallel group.
//
// Dims: T tokens, H hidden, E experts (logical), ep ranks in the group, E_local = E / ep
//       experts held here, k top-k, F expert FFN size, Fs shared-expert FFN size.
// Expert FFN: y = down(silu(gate(x)) * up(x)). Block output, per token t:
//   out[t] = sum_j w[t,j] * expert_{id[t,j]}(x[t])  +  [sigmoid(x[t]·g)] * shared(x[t])
// with (id, w) from kernels::Route (see kernels/moe.h for each routing method).
//
// Forward: router logits (one MatMul, f32) -> Route -> group the routed (token, choice) rows
// by physical expert -> per local expert with >= 1 row, one MatMul per projection over all
// its rows -> combine (weighted sum back to each token, in choice order) -> + shared expert.
// Dropless (no capacity limit). An expert with no rows is not read at all, so a decode step
// reads only its chosen experts' weights (bytes_read_last_forward() says how many bytes).
//
// Placement. Ep rank r holds logical experts [r·E_local, (r+1)·E_local) (Topology::Experts),
// stacked in that order: physical_of_logical()[e] = {rank e / E_local, slot e % E_local}.
// Every rank holds the router, the selection bias and the shared expert (replicated). The
// mode (ExpertParallelism, chosen at Create) says how tokens are laid out:
//   one-rank group (any mode)  in: [T, H] -> out: [T, H], no communication.
//   kReplicatedTokens  in: Replicated [T, H] (the same x on every rank, e.g. after a TP
//       all-reduce) -> out: Replicated [T, H]. Every rank routes every token (identically:
//       same x, same f32 router), runs only its local experts on the rows routed to them,
//       combines them into a partial [T, H] (zero where a token's experts live elsewhere),
//       and one all-reduce (sum, T·H f32) finishes. Ep rank 0 adds the shared expert into
//       its partial before the all-reduce: computed once in the group instead of ep times,
//       for the same latency (the all-reduce is on the critical path either way).
//   kShardedTokens  in: Shard(0) [T_r, H] (each rank its own tokens, T_r may differ and be
//       0, as with data-parallel attention) -> out: Shard(0) [T_r, H], rank r's output for
//       its own tokens. Each rank routes its tokens, then three all-to-all-v calls:
//       (1) counts: to each peer, that peer's E_local per-expert row counts (int64 as raw
//       bytes); (2) dispatch: the activations of the rows routed to the peer's experts, in
//       (expert, token, choice) order; (3) combine: the expert outputs back to the owners
//       in the order they came. Routing weights never leave the owner, which sums in choice
//       order. Rows for this rank's own experts never touch the communicator, so the bytes
//       moved are exactly the routed rows that cross ranks: (1) 8·E_local·(ep-1),
//       (2) 4·H·rows sent to peers, (3) 4·H·rows received from peers. The shared expert
//       runs on each rank's own tokens. A (token, peer) pair chosen twice moves twice (no
//       per-destination dedup yet).
//   Both modes' outputs equal the one-rank layer with all E experts to f32 rounding (the
//   grouped matmuls see different row batches); every rank must call Forward (collective),
//   in kReplicatedTokens with the same T.
//
// Router statistics (tokens_per_expert) stay logical [E] and per rank: in kReplicatedTokens
// every rank counts every token; in kShardedTokens each rank counts its own tokens.
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

// How a layer over an ep-rank group lays out tokens (see the header comment).
enum class ExpertParallelism {
  kNone,              // no expert parallelism: the group must be one rank
  kReplicatedTokens,  // same x on every rank; local experts, then one all-reduce
  kShardedTokens,     // each rank its own tokens; all-to-all-v dispatch and combine
};

// Where a logical expert lives: ep rank and slot in that rank's stacked tensors.
struct ExpertSlot {
  int32_t rank = 0;
  int32_t slot = 0;
  friend bool operator==(const ExpertSlot&, const ExpertSlot&) = default;
};

struct SharedExpertWeights {
  kernels::OwnedTensor gate;  // [Fs, H] any DType
  kernels::OwnedTensor up;    // [Fs, H] any DType
  kernels::OwnedTensor down;  // [H, Fs] any DType
  // Qwen2-MoE's shared_expert_gate: the shared output is scaled by sigmoid(x · g).
  std::optional<kernels::OwnedTensor> sigmoid_gate;  // [1, H] any DType
};

struct MoeWeights {
  kernels::OwnedTensor router;  // [E, H] f32, replicated on every rank
  // This rank's E_local = E / ep experts, stacked (logical experts [r·E_local, (r+1)·E_local)
  // on ep rank r); local slot e's matrix is a view of rows [e*F, (e+1)*F) (gate,
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
  // (from its config). `comm` (not owned, must outlive the layer) is the ep group; E must
  // be a multiple of its size (InvalidArgument otherwise) and the stacked expert tensors
  // hold E / ep experts. A group of more than one rank needs a mode other than kNone
  // (Unimplemented: replicated experts over a group, i.e. experts split by TP, are not
  // supported). Create does not communicate; every rank must pass the same mode.
  static absl::StatusOr<std::unique_ptr<MoeLayer>> Create(
      MoeWeights weights, const kernels::RoutingParams& routing, Communicator* comm,
      ExpertParallelism mode = ExpertParallelism::kNone);

  MoeLayer(const MoeLayer&) = delete;
  MoeLayer& operator=(const MoeLayer&) = delete;

  // out [T, H] f32 <- x [T, H] f32 (CPU); out must not alias x; placement as in the header
  // comment. Collective over the group when ep > 1. InvalidArgument on a shape mismatch or
  // a bad row count from a peer; a communicator failure (DeadlineExceeded when a peer is
  // gone) is returned as is, with out unspecified.
  absl::Status Forward(kernels::Tensor out, kernels::ConstTensor x);

  int64_t hidden() const { return hidden_; }
  int64_t expert_ffn() const { return ffn_; }
  int32_t num_experts() const { return num_experts_; }
  int32_t local_experts() const { return local_experts_; }
  ExpertParallelism parallelism() const { return mode_; }
  const kernels::RoutingParams& routing() const { return routing_; }
  // [E]: where each logical expert lives; contiguous blocks today (see Placement above), a
  // table so that hot experts can later be replicated.
  const std::vector<ExpertSlot>& physical_of_logical() const { return physical_of_logical_; }

  // Weight bytes the last Forward read on this rank: router + the local experts that got
  // >= 1 row (their gate, up and down slices) + the shared expert (and its gate) if this
  // rank ran it.
  int64_t bytes_read_last_forward() const { return bytes_read_last_forward_; }
  // Routed (token, choice) pairs per logical expert [E], summed over Forward calls since
  // construction or the last ResetTokensPerExpert.
  const std::vector<int64_t>& tokens_per_expert() const { return tokens_per_expert_; }
  void ResetTokensPerExpert();

  int64_t bytes() const;  // resident weight bytes

 private:
  MoeLayer(MoeWeights weights, const kernels::RoutingParams& routing, Communicator* comm,
           ExpertParallelism mode);
  // Router logits and Route for x's T tokens into ids_, route_w_ [T, k]; counts them in
  // tokens_per_expert_.
  void RouteTokens(kernels::ConstTensor x);
  // y [N, H] <- local experts on x [N, H], expert-major: slot e owns rows
  // [offsets[e], offsets[e+1]) (offsets [E_local + 1]). Returns the weight bytes read.
  int64_t RunLocalExperts(float* y, const float* x, const int64_t* offsets);
  absl::Status ForwardOneRank(kernels::Tensor out, kernels::ConstTensor x);
  absl::Status ForwardReplicated(kernels::Tensor out, kernels::ConstTensor x);  // moe_ep.cc
  absl::Status ForwardSharded(kernels::Tensor out, kernels::ConstTensor x);     // moe_ep.cc
  int64_t SharedBytes() const;
  // Expert `e`'s [rows, cols] matrix inside a stacked [E_local, rows, cols] tensor.
  static kernels::ConstTensor Slice(const kernels::OwnedTensor& stacked, int32_t e);
  static int64_t SliceBytes(const kernels::OwnedTensor& stacked);
  void SharedForward(kernels::Tensor out, kernels::ConstTensor x);

  // Immutable after construction.
  MoeWeights w_;
  kernels::RoutingParams routing_;  // selection_bias points into w_.selection_bias
  Communicator* comm_ = nullptr;    // not owned
  ExpertParallelism mode_ = ExpertParallelism::kNone;
  int64_t hidden_ = 0, ffn_ = 0;
  int32_t num_experts_ = 0, local_experts_ = 0;
  std::vector<ExpertSlot> physical_of_logical_;  // [E]

  // Mutated by Forward (one thread at a time).
  std::vector<int64_t> tokens_per_expert_;  // [E]
  int64_t bytes_read_last_forward_ = 0;
  // Scratch, grown as needed and reused across calls (GroupByExpert's index vectors are
  // still allocated per call: R = T*k ints, small next to the activations).
  std::vector<float> logits_, route_w_, xg_, yg_, h_gate_, h_up_, shared_;
  std::vector<float> send_, recv_;  // ep > 1: rows leaving and arriving
  std::vector<int32_t> ids_, physical_ids_;
  std::vector<int64_t> counts_;  // ep > 1: per-expert row counts
};

}  // namespace tessera::parallel
