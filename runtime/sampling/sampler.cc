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

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

Sample Sampler::Next(std::span<const float> logits, std::span<const int32_t> history) {
  const int32_t V = static_cast<int32_t>(logits.size());
  // Log-softmax of the raw logits, for the reported log-probability.
  const float raw_max = *std::max_element(logits.begin(), logits.end());
  double raw_sum = 0.0;
  for (float l : logits) raw_sum += std::exp(static_cast<double>(l - raw_max));
  const float raw_lse = raw_max + static_cast<float>(std::log(raw_sum));

  work_.assign(logits.begin(), logits.end());
  if (params_.repetition_penalty != 1.0f) {
    for (int32_t id : history) {
      if (id < 0 || id >= V) continue;
      float& l = work_[id];
      // Each distinct token once: mark by comparing with the untouched logit.
      if (l != logits[id]) continue;
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  auto result = [&](int32_t id) { return Sample{id, logits[id] - raw_lse}; };
  if (params_.temperature == 0.0f) {
    return result(static_cast<int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin()));
  }
  for (float& l : work_) l /= params_.temperature;

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
  const float top = work_[order_[0]];
  std::vector<double> probs(n);
  double sum = 0.0;
  for (int32_t i = 0; i < n; ++i) sum += probs[i] = std::exp(static_cast<double>(work_[order_[i]] - top));
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
