#include "parallel/moe.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "kernels/activation.h"
#include "kernels/matmul.h"

namespace tessera::parallel {
namespace {

using kernels::ConstTensor;
using kernels::DType;
using kernels::OwnedTensor;
using kernels::Tensor;

std::string ShapeString(const ConstTensor& t) {
  std::string s = "[";
  for (int i = 0; i < t.rank; ++i) absl::StrAppend(&s, i ? ", " : "", t.shape[i]);
  return s + "]";
}

// OK iff `t` is `dims` and its storage holds exactly that many elements of its type.
absl::Status CheckShape(const char* what, const OwnedTensor& t, std::vector<int64_t> dims) {
  const ConstTensor v = t.cview();
  bool ok = v.rank == static_cast<int>(dims.size());
  for (int i = 0; ok && i < v.rank; ++i) ok = v.shape[i] == dims[i];
  std::string want = "[";
  for (size_t i = 0; i < dims.size(); ++i) absl::StrAppend(&want, i ? ", " : "", dims[i]);
  want += "]";
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("MoE ", what, ": shape ", ShapeString(v), ", expected ", want));
  }
  // Every matrix's rows must be whole blocks, so each expert slice and row starts on a block.
  const std::optional<int64_t> row = kernels::BytesFor(v.type, v.cols());
  const std::optional<int64_t> all = kernels::BytesFor(v.type, v.numel());
  if (!row || !all || t.bytes() != *all) {
    return absl::InvalidArgumentError(absl::StrCat("MoE ", what, ": ", want, " rows of ", v.cols(),
                                                   " are not whole blocks of ",
                                                   kernels::Name(v.type)));
  }
  return absl::OkStatus();
}

float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

absl::StatusOr<std::unique_ptr<MoeLayer>> MoeLayer::Create(MoeWeights weights,
                                                           const kernels::RoutingParams& routing,
                                                           Communicator* comm,
                                                           ExpertParallelism mode) {
  if (comm == nullptr) return absl::InvalidArgumentError("MoE: no communicator");
  const int ep = comm->size();
  switch (mode) {
    case ExpertParallelism::kNone:
      if (ep != 1) {
        return absl::UnimplementedError(absl::StrCat(
            "MoE: a ", ep,
            "-rank group with ExpertParallelism::kNone (every rank all experts, "
            "i.e. experts split by tensor parallelism) is not implemented; hand the layer a "
            "one-rank group, or its E / ep experts with kReplicatedTokens or kShardedTokens"));
      }
      break;
    case ExpertParallelism::kReplicatedTokens:
    case ExpertParallelism::kShardedTokens:
      break;
  }
  const ConstTensor r = weights.router.cview();
  if (r.rank != 2 || r.dim(0) < 1 || r.dim(1) < 1 || r.dim(0) > (1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("MoE router: shape ", ShapeString(r), ", expected [E, H]"));
  }
  if (r.type != DType::kF32) {
    return absl::InvalidArgumentError(absl::StrCat("MoE router: type ", kernels::Name(r.type),
                                                   "; the router is f32 (convert at load)"));
  }
  const int64_t E = r.dim(0), H = r.dim(1);
  const int64_t F = weights.gate.cview().rank == 3 ? weights.gate.cview().dim(1) : -1;
  if (E % ep != 0) {
    std::string valid;
    for (int64_t d = 1; d <= E; ++d) {
      if (E % d == 0) absl::StrAppend(&valid, valid.empty() ? "" : ", ", d);
    }
    return absl::InvalidArgumentError(
        absl::StrCat("MoE: ", E, " experts do not split evenly over ", ep,
                     " expert-parallel ranks; valid ep for this model: ", valid));
  }
  const int64_t El = E / ep;  // contiguous blocks: the table in the constructor
  auto expert_shape = [&](const char* what, const OwnedTensor& t, std::vector<int64_t> dims) {
    absl::Status s = CheckShape(what, t, std::move(dims));
    if (s.ok() || ep == 1) return s;
    return absl::InvalidArgumentError(absl::StrCat(s.message(), " (ep rank ", comm->rank(),
                                                   " holds E / ep = ", E, " / ", ep, " = ", El,
                                                   " experts)"));
  };
  if (absl::Status s = CheckShape("router", weights.router, {E, H}); !s.ok()) return s;
  if (absl::Status s = expert_shape("expert gate", weights.gate, {El, F, H}); !s.ok()) return s;
  if (absl::Status s = expert_shape("expert up", weights.up, {El, F, H}); !s.ok()) return s;
  if (absl::Status s = expert_shape("expert down", weights.down, {El, H, F}); !s.ok()) return s;
  if (F < 1) return absl::InvalidArgumentError("MoE: expert FFN size must be >= 1");
  if (routing.selection_bias != nullptr) {
    return absl::InvalidArgumentError(
        "MoE: pass the selection bias in MoeWeights::selection_bias (the layer owns it)");
  }
  kernels::RoutingParams p = routing;
  if (weights.selection_bias) {
    if (absl::Status s = CheckShape("selection bias", *weights.selection_bias, {E}); !s.ok()) {
      return s;
    }
    if (weights.selection_bias->cview().type != DType::kF32) {
      return absl::InvalidArgumentError("MoE selection bias: must be f32");
    }
    p.selection_bias = weights.selection_bias->as<const float>();
  }
  if (absl::Status s = kernels::ValidateRoutingParams(p, static_cast<int32_t>(E)); !s.ok()) {
    return s;
  }
  if (weights.shared) {
    const SharedExpertWeights& sh = *weights.shared;
    const int64_t Fs = sh.gate.cview().rank == 2 ? sh.gate.cview().dim(0) : -1;
    if (absl::Status s = CheckShape("shared gate", sh.gate, {Fs, H}); !s.ok()) return s;
    if (absl::Status s = CheckShape("shared up", sh.up, {Fs, H}); !s.ok()) return s;
    if (absl::Status s = CheckShape("shared down", sh.down, {H, Fs}); !s.ok()) return s;
    if (Fs < 1) return absl::InvalidArgumentError("MoE: shared expert FFN size must be >= 1");
    if (sh.sigmoid_gate) {
      if (absl::Status s = CheckShape("shared expert gate", *sh.sigmoid_gate, {1, H}); !s.ok()) {
        return s;
      }
    }
  }
  return std::unique_ptr<MoeLayer>(new MoeLayer(std::move(weights), p, comm, mode));
}

MoeLayer::MoeLayer(MoeWeights weights, const kernels::RoutingParams& routing, Communicator* comm,
                   ExpertParallelism mode)
    : w_(std::move(weights)), routing_(routing), comm_(comm), mode_(mode) {
  // Moving the OwnedTensor keeps its storage, so routing_.selection_bias stays valid.
  hidden_ = w_.router.cview().dim(1);
  ffn_ = w_.gate.cview().dim(1);
  num_experts_ = static_cast<int32_t>(w_.router.cview().dim(0));
  local_experts_ = static_cast<int32_t>(w_.gate.cview().dim(0));
  physical_of_logical_.resize(num_experts_);
  for (int32_t e = 0; e < num_experts_; ++e) {
    physical_of_logical_[e] = {e / local_experts_, e % local_experts_};
  }
  tokens_per_expert_.assign(num_experts_, 0);
}

void MoeLayer::ResetTokensPerExpert() {
  std::fill(tokens_per_expert_.begin(), tokens_per_expert_.end(), 0);
}

int64_t MoeLayer::SharedBytes() const {
  if (!w_.shared) return 0;
  const SharedExpertWeights& sh = *w_.shared;
  return sh.gate.bytes() + sh.up.bytes() + sh.down.bytes() +
         (sh.sigmoid_gate ? sh.sigmoid_gate->bytes() : 0);
}

int64_t MoeLayer::bytes() const {
  int64_t b = w_.router.bytes() + w_.gate.bytes() + w_.up.bytes() + w_.down.bytes() +
              (w_.selection_bias ? w_.selection_bias->bytes() : 0);
  return b + SharedBytes();
}

ConstTensor MoeLayer::Slice(const OwnedTensor& stacked, int32_t e) {
  const ConstTensor v = stacked.cview();
  const auto* base = static_cast<const uint8_t*>(v.data);
  return ConstTensor(base + e * SliceBytes(stacked), v.type, {v.dim(1), v.dim(2)});
}

int64_t MoeLayer::SliceBytes(const OwnedTensor& stacked) {
  const ConstTensor v = stacked.cview();
  return v.dim(1) * *kernels::BytesFor(v.type, v.dim(2));  // whole blocks: checked in Create
}

absl::Status MoeLayer::Forward(Tensor out, ConstTensor x) {
  const int64_t H = hidden_, T = x.rows();
  if (x.type != DType::kF32 || out.type != DType::kF32 || x.cols() != H || out.cols() != H ||
      out.rows() != T || (T > 0 && out.data == x.data)) {
    return absl::InvalidArgumentError(absl::StrCat("MoE Forward: x ", ShapeString(x), " out ",
                                                   ShapeString(out), "; both [T, ", H,
                                                   "] f32, distinct"));
  }
  bytes_read_last_forward_ = 0;
  if (comm_->size() == 1) return ForwardOneRank(out, x);
  switch (mode_) {
    case ExpertParallelism::kNone:
      break;  // refused by Create for ep > 1
    case ExpertParallelism::kReplicatedTokens:
      return ForwardReplicated(out, x);
    case ExpertParallelism::kShardedTokens:
      return ForwardSharded(out, x);
  }
  return absl::InternalError("MoE Forward: no expert-parallel mode");  // unreachable
}

void MoeLayer::RouteTokens(ConstTensor x) {
  const int64_t T = x.rows();
  const int32_t E = num_experts_, k = routing_.top_k;
  logits_.resize(T * E);
  ids_.resize(T * k);
  route_w_.resize(T * k);
  if (T == 0) return;
  kernels::MatMul(Tensor(logits_.data(), DType::kF32, {T, E}), x, w_.router.cview());
  kernels::Route(ids_.data(), route_w_.data(), ConstTensor(logits_.data(), DType::kF32, {T, E}),
                 routing_);
  for (int64_t i = 0; i < T * k; ++i) ++tokens_per_expert_[ids_[i]];  // ids in [0, E): Route
}

int64_t MoeLayer::RunLocalExperts(float* y, const float* x, const int64_t* offsets) {
  const int64_t H = hidden_, F = ffn_;
  int64_t most = 0, bytes = 0;
  for (int32_t e = 0; e < local_experts_; ++e) most = std::max(most, offsets[e + 1] - offsets[e]);
  h_gate_.resize(most * F);
  h_up_.resize(most * F);
  for (int32_t e = 0; e < local_experts_; ++e) {
    const int64_t n = offsets[e + 1] - offsets[e], first = offsets[e];
    if (n == 0) continue;  // an idle expert is not read
    const ConstTensor xs(x + first * H, DType::kF32, {n, H});
    const Tensor hg(h_gate_.data(), DType::kF32, {n, F});
    const Tensor hu(h_up_.data(), DType::kF32, {n, F});
    kernels::MatMul(hg, xs, Slice(w_.gate, e));
    kernels::MatMul(hu, xs, Slice(w_.up, e));
    kernels::SwiGlu(hg, hg, hu);
    kernels::MatMul(Tensor(y + first * H, DType::kF32, {n, H}), hg, Slice(w_.down, e));
    bytes += SliceBytes(w_.gate) + SliceBytes(w_.up) + SliceBytes(w_.down);
  }
  return bytes;
}

absl::Status MoeLayer::ForwardOneRank(Tensor out, ConstTensor x) {
  const int64_t H = hidden_, T = x.rows();
  const int32_t k = routing_.top_k;
  if (T == 0) return absl::OkStatus();
  RouteTokens(x);
  // One rank holds every expert: slot = physical_of_logical_[id].slot.
  physical_ids_.resize(T * k);
  for (int64_t i = 0; i < T * k; ++i) physical_ids_[i] = physical_of_logical_[ids_[i]].slot;

  // Dispatch (on one rank: a gather into expert order).
  absl::StatusOr<kernels::ExpertGrouping> g =
      kernels::GroupByExpert(physical_ids_.data(), T, k, local_experts_);
  if (!g.ok()) return g.status();
  const int64_t R = T * k;
  xg_.resize(R * H);
  yg_.resize(R * H);
  kernels::GatherByExpert(Tensor(xg_.data(), DType::kF32, {R, H}), x, *g);
  int64_t bytes = w_.router.bytes() + RunLocalExperts(yg_.data(), xg_.data(), g->offsets.data());

  // Combine (on one rank: the weighted sum back into token order).
  kernels::CombineFromExperts(out, ConstTensor(yg_.data(), DType::kF32, {R, H}), *g,
                              route_w_.data());
  if (w_.shared) {
    SharedForward(out, x);
    bytes += SharedBytes();
  }
  bytes_read_last_forward_ = bytes;
  return absl::OkStatus();
}

// out[t] += [sigmoid(x[t] · g)] * down(silu(gate(x[t])) * up(x[t])).
void MoeLayer::SharedForward(Tensor out, ConstTensor x) {
  const SharedExpertWeights& sh = *w_.shared;
  const int64_t T = x.rows(), H = hidden_, Fs = sh.gate.cview().dim(0);
  shared_.resize(T * (2 * Fs + H + 1));
  const Tensor hg(shared_.data(), DType::kF32, {T, Fs});
  const Tensor hu(shared_.data() + T * Fs, DType::kF32, {T, Fs});
  const Tensor y(shared_.data() + 2 * T * Fs, DType::kF32, {T, H});
  float* gate_logit = shared_.data() + T * (2 * Fs + H);  // [T, 1]
  kernels::MatMul(hg, x, sh.gate.cview());
  kernels::MatMul(hu, x, sh.up.cview());
  kernels::SwiGlu(hg, hg, hu);
  kernels::MatMul(y, hg, sh.down.cview());
  if (sh.sigmoid_gate) {
    kernels::MatMul(Tensor(gate_logit, DType::kF32, {T, 1}), x, sh.sigmoid_gate->cview());
  }
  for (int64_t t = 0; t < T; ++t) {
    const float s = sh.sigmoid_gate ? Sigmoid(gate_logit[t]) : 1.0f;
    float* o = out.as<float>() + t * H;
    const float* yt = y.as<const float>() + t * H;
    for (int64_t h = 0; h < H; ++h) o[h] += s * yt[h];
  }
}

}  // namespace tessera::parallel
