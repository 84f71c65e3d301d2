#include "runtime/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace tessera {

absl::Status Validate(const SamplingParams& p) {
  auto bad = [](const char* name, auto value, const char* want) {
    return absl::InvalidArgumentError(absl::StrCat(name, " ", value, " is out of range (", want, ")"));
  };
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) {
    return bad("temperature", p.temperature, "finite, >= 0");
  }
  if (p.top_k < 0) return bad("top_k", p.top_k, ">= 0");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return bad("top_p", p.top_p, "in (0, 1]");
  if (!(p.min_p >= 0.0f && p.min_p < 1.0f)) return bad("min_p", p.min_p, "in [0, 1)");
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty)) {
    return bad("repetition_penalty", p.repetition_penalty, "finite, > 0");
  }
  if (p.max_new_tokens < 1) return bad("max_new_tokens", p.max_new_tokens, ">= 1");
  return absl::OkStatus();
}

std::vector<Sample> TopLogprobs(std::span<const float> logits, int32_t n) {
  const int32_t V = static_cast<int32_t>(logits.size());
  n = std::clamp(n, 0, V);
  if (n == 0) return {};
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max);
  const double lse = max + std::log(sum);
  std::vector<int32_t> ids(V);
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  std::vector<Sample> top(n);
  for (int32_t i = 0; i < n; ++i) {
    top[i] = {ids[i], static_cast<float>(static_cast<double>(logits[ids[i]]) - lse)};
  }
  return top;
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

absl::StatusOr<Sample> Sampler::Next(std::span<const float> logits,
                                     std::span<const int32_t> history) {
  const int32_t V = static_cast<int32_t>(logits.size());
  if (V == 0) return absl::InvalidArgumentError("sampler: the logits are empty");
  // Non-finite logits make the softmax NaN and the sort's comparator no strict weak order.
  int64_t bad = 0, first_bad = -1;
  for (int32_t i = 0; i < V; ++i) {
    if (std::isfinite(logits[i])) continue;
    if (bad++ == 0) first_bad = i;
  }
  if (bad > 0) {
    return absl::DataLossError(absl::StrCat(
        "sampler: ", bad, " of ", V, " logits are not finite (first: ", logits[first_bad],
        " at token ", first_bad, "); the model's weights or activations are corrupt"));
  }
  // Log-softmax of the raw logits, for the reported log-probability.
  const float raw_max = *std::max_element(logits.begin(), logits.end());
  double raw_sum = 0.0;
  for (float l : logits) raw_sum += std::exp(static_cast<double>(l) - raw_max);
  const double raw_lse = raw_max + std::log(raw_sum);

  work_.assign(logits.begin(), logits.end());
  if (params_.repetition_penalty != 1.0f) {
    for (int32_t id : history) {
      if (id < 0 || id >= V) continue;
      double& l = work_[id];
      // Each distinct token once: mark by comparing with the untouched logit.
      if (l != logits[id]) continue;
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  auto result = [&](int32_t id) { return Sample{id, static_cast<float>(logits[id] - raw_lse)}; };
  if (params_.temperature < kGreedyBelowTemperature) {
    return result(static_cast<int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin()));
  }
  for (double& l : work_) l /= params_.temperature;

  // Candidates sorted by logit, descending (ties: lower id first), cut by top-k.
  order_.resize(V);
  std::iota(order_.begin(), order_.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) {
    return work_[a] > work_[b] || (work_[a] == work_[b] && a < b);
  };
  int32_t n = V;
  if (params_.top_k > 0 && params_.top_k < V) {
    n = params_.top_k;
    std::partial_sort(order_.begin(), order_.begin() + n, order_.end(), by_logit);
  } else {
    std::sort(order_.begin(), order_.end(), by_logit);
  }
  // Softmax over the candidates.
  const double top = work_[order_[0]];
  std::vector<double> probs(n);
  double sum = 0.0;
  for (int32_t i = 0; i < n; ++i) sum += probs[i] = std::exp(work_[order_[i]] - top);
  for (double& p : probs) p /= sum;
  // top-p: the smallest prefix whose mass reaches top_p (at least one token).
  if (params_.top_p < 1.0f) {
    double mass = 0.0;
    int32_t keep = 0;
    while (keep < n && mass < params_.top_p) mass += probs[keep++];
    n = std::max(keep, 1);
  }
  // min-p: drop tokens below min_p times the top probability.
  if (params_.min_p > 0.0f) {
    const double floor = params_.min_p * probs[0];
    int32_t keep = 1;
    while (keep < n && probs[keep] >= floor) ++keep;
    n = keep;
  }
  double kept = 0.0;
  for (int32_t i = 0; i < n; ++i) kept += probs[i];
  const double u = std::uniform_real_distribution<double>(0.0, kept)(rng_);
  double acc = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    acc += probs[i];
    if (u < acc) return result(order_[i]);
  }
  return result(order_[n - 1]);
}

}  // namespace tessera
