#include "runtime/engine/generate.h"

#include <algorithm>
#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tessera {
namespace {
double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}
}  // namespace

absl::StatusOr<GenerateResult> Generate(const Transformer& model,
                                        const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options) {
  const SamplingParams& sp = options.sampling;
  if (absl::Status s = Validate(sp); !s.ok()) return s;
  const int64_t context = model.config().context;
  const int64_t T = static_cast<int64_t>(prompt.size());
  if (T == 0) return absl::InvalidArgumentError("the prompt is empty");
  if (T > context) {
    return absl::InvalidArgumentError(absl::StrCat("the prompt has ", T,
                                                   " tokens, more than the model's context of ",
                                                   context));
  }
  if (T + sp.max_new_tokens > context) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt (", T, " tokens) + max new tokens (", sp.max_new_tokens,
        ") exceeds the model's context of ", context, "; lower -n to at most ", context - T));
  }
  auto cache_or = KvCache::Create(model.CacheShape(T + sp.max_new_tokens));
  if (!cache_or.ok()) return cache_or.status();
  KvCache& cache = **cache_or;
  Sampler sampler(sp);
  GenerateResult r;
  std::vector<int32_t> history = prompt;
  std::vector<float> logits;
  const int64_t V = model.config().vocab;

  auto t0 = std::chrono::steady_clock::now();
  const SeqChunk prefill{0, prompt, options.keep_prompt_logits};
  if (absl::Status s = model.Forward({&prefill, 1}, cache, logits); !s.ok()) return s;
  r.prefill_seconds = Seconds(t0);
  std::span<const float> next(logits.data() + (options.keep_prompt_logits ? (T - 1) * V : 0), V);
  if (options.keep_prompt_logits) r.prompt_logits = logits;

  t0 = std::chrono::steady_clock::now();
  r.finish_reason = "length";
  for (int32_t step = 0; step < sp.max_new_tokens; ++step) {
    // Every rank samples the same (all-gathered) logits, so a bad step fails on all of them.
    absl::StatusOr<Sample> sampled = sampler.Next(next, history);
    if (!sampled.ok()) {
      return absl::Status(sampled.status().code(),
                          absl::StrCat("step ", step, ": ", sampled.status().message()));
    }
    Sample s = *sampled;
    if (options.group != nullptr && options.group->size() > 1) {
      int32_t id = s.id;
      kernels::Tensor t(&id, kernels::DType::kF32, {1});  // 4 bytes; broadcast moves bytes
      if (absl::Status st = options.group->Broadcast(t, 0); !st.ok()) return st;
      s.id = id;
    }
    r.ids.push_back(s.id);
    r.logprobs.push_back(s.logprob);
    history.push_back(s.id);
    if (options.on_token) options.on_token(s.id);
    if (std::find(sp.stop_tokens.begin(), sp.stop_tokens.end(), s.id) != sp.stop_tokens.end()) {
      r.finish_reason = "stop";
      break;
    }
    if (step + 1 == sp.max_new_tokens) break;
    const SeqChunk decode{0, {&history.back(), 1}, false};
    if (absl::Status st = model.Forward({&decode, 1}, cache, logits); !st.ok()) return st;
    next = std::span<const float>(logits.data(), V);
  }
  r.decode_seconds = Seconds(t0);
  return r;
}

}  // namespace tessera
