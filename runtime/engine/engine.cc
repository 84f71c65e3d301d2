#include "runtime/engine/engine.h"

#include "absl/strings/str_cat.h"

namespace tessera {

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const Transformer& model,
                                                       const EngineConfig& config) {
  KvCacheShape shape = model.CacheShape(config.kv_blocks * config.block_size, config.block_size);
  absl::StatusOr<std::unique_ptr<KvCache>> cache = KvCache::Create(shape);
  if (!cache.ok()) return cache.status();
  absl::StatusOr<serving::KvBlockManager> blocks =
      serving::KvBlockManager::Create(config.kv_blocks, config.block_size);
  if (!blocks.ok()) return blocks.status();
  absl::StatusOr<serving::Scheduler> scheduler = serving::Scheduler::Create(
      {.max_batch_tokens = config.max_batch_tokens,
       .max_seqs = config.max_seqs,
       .max_context = model.config().context},
      *std::move(blocks));
  if (!scheduler.ok()) return scheduler.status();
  return std::unique_ptr<Engine>(new Engine(model, *std::move(cache), *std::move(scheduler)));
}

absl::Status Engine::Add(EngineRequest request) {
  if (absl::Status s = Validate(request.sampling); !s.ok()) return s;
  const int64_t V = model_.config().vocab;
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= V) {
      return absl::InvalidArgumentError(absl::StrCat("request ", request.id, ": token id ", t,
                                                     " is outside the vocabulary [0, ", V, ")"));
    }
  }
  const SamplingParams& sp = request.sampling;
  serving::Request r{.id = request.id,
                     .prompt = request.prompt,
                     .sampling = {.temperature = sp.temperature,
                                  .top_k = sp.top_k,
                                  .top_p = sp.top_p,
                                  .min_p = sp.min_p,
                                  .repetition_penalty = sp.repetition_penalty,
                                  .seed = sp.seed},
                     .max_tokens = sp.max_new_tokens,
                     .stop_tokens = sp.stop_tokens};
  if (absl::Status s = scheduler_.Add(std::move(r)); !s.ok()) return s;
  live_.emplace(request.id, Live{Sampler(sp), std::move(request.prompt)});
  return absl::OkStatus();
}

bool Engine::Cancel(serving::RequestId id) { return scheduler_.Cancel(id); }

absl::StatusOr<std::vector<EngineOutput>> Engine::Step() {
  const serving::StepPlan plan = scheduler_.Schedule();
  if (absl::Status s = cache_->ApplyBlockOps(plan.kv_generation, plan.block_ops); !s.ok()) {
    return s;
  }
  std::vector<SeqChunk> batch;
  size_t t = 0;
  for (const serving::SeqStep& s : plan.seqs) {
    if (s.first_position != cache_->length(s.seq)) {
      return absl::InternalError(absl::StrCat("step ", plan.step, ": sequence ", s.seq,
                                              " starts at ", s.first_position,
                                              ", its KV holds ", cache_->length(s.seq)));
    }
    batch.push_back({.seq = s.seq,
                     .tokens = std::span<const int32_t>(plan.tokens).subspan(t, s.num_tokens),
                     .all_logits = false,
                     .logits = s.wants_logits});
    t += s.num_tokens;
  }
  if (!batch.empty()) {
    if (absl::Status s = model_.Forward(batch, *cache_, logits_); !s.ok()) return s;
  }
  const int64_t V = model_.config().vocab;
  std::vector<int32_t> sampled;
  std::map<serving::RequestId, float> logprob;
  int64_t row = 0;
  for (const serving::SeqStep& s : plan.seqs) {
    if (!s.wants_logits) continue;
    Live& live = live_.at(s.seq);
    absl::StatusOr<Sample> next =
        live.sampler.Next(std::span<const float>(logits_.data() + row * V, V), live.history);
    if (!next.ok()) {
      return absl::Status(next.status().code(), absl::StrCat("request ", s.seq, ": ",
                                                             next.status().message()));
    }
    sampled.push_back(next->id);
    logprob[s.seq] = next->logprob;
    ++row;
  }
  absl::StatusOr<std::vector<serving::RequestEvent>> events = scheduler_.Update(plan, sampled);
  if (!events.ok()) return events.status();
  std::vector<EngineOutput> out;
  for (const serving::RequestEvent& e : *events) {
    EngineOutput o{.id = e.id, .tokens = e.tokens, .finish = e.finish};
    auto it = live_.find(e.id);
    for (int32_t tok : e.tokens) {
      o.logprobs.push_back(logprob.at(e.id));
      if (it != live_.end()) it->second.history.push_back(tok);
    }
    if (e.finish) live_.erase(e.id);
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace tessera
