#include "runtime/engine/generate.h"

#include <algorithm>
#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/engine/engine.h"

namespace tessera {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

absl::Status CheckRequest(const Transformer& model, int64_t T, const SamplingParams& sp) {
  if (absl::Status s = Validate(sp); !s.ok()) return s;
  const int64_t context = model.config().context;
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
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GenerateResult> Generate(const Transformer& model,
                                        const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options) {
  const SamplingParams& sp = options.sampling;
  const int64_t T = static_cast<int64_t>(prompt.size());
  if (absl::Status s = CheckRequest(model, T, sp); !s.ok()) {
    if (options.world != nullptr) ReleaseWorkers(*options.world).IgnoreError();
    return s;
  }
  constexpr int64_t kBlock = 16;
  const EngineConfig config{.kv_blocks = (T + sp.max_new_tokens + kBlock - 1) / kBlock,
                            .block_size = kBlock,
                            .max_batch_tokens = std::clamp<int64_t>(options.prefill_chunk, 1, T),
                            .max_seqs = 1,
                            .kv_type = options.kv_type};
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(model, config, options.world);
  if (!engine.ok()) return engine.status();  // Create released the workers
  if (absl::Status s = (*engine)->Add({.id = 0,
                                       .prompt = prompt,
                                       .sampling = sp,
                                       .prompt_logits = options.keep_prompt_logits});
      !s.ok()) {
    return s;  // the engine's destructor stops the workers
  }
  GenerateResult r;
  const auto t0 = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point first;
  bool done = false;
  while (!done) {
    absl::StatusOr<std::vector<EngineOutput>> outs = (*engine)->Step();
    if (!outs.ok()) return outs.status();
    for (EngineOutput& o : *outs) {
      if (!o.error.ok()) return o.error;
      for (size_t i = 0; i < o.tokens.size(); ++i) {
        if (r.ids.empty()) {
          first = std::chrono::steady_clock::now();
          r.prefill_seconds = Seconds(t0);
        }
        r.ids.push_back(o.tokens[i]);
        r.logprobs.push_back(o.logprobs[i]);
        if (options.on_token) options.on_token(o.tokens[i]);
      }
      if (o.finish) {
        done = true;
        r.finish_reason = *o.finish == serving::FinishReason::kStop ? "stop" : "length";
        r.prompt_logits = std::move(o.prompt_logits);
      }
    }
  }
  if (!r.ids.empty()) r.decode_seconds = Seconds(first);
  if (absl::Status s = (*engine)->Shutdown(); !s.ok()) return s;
  return r;
}

}  // namespace tessera
