#include "runtime/engine/engine.h"

#include <cstring>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "kernels/buffer.h"
#include "runtime/serving/step_plan.h"

namespace tessera {
namespace {

using kernels::DType;

// The configuration message: u32 magic "TSEC", u32 version, i64 kv_blocks, block_size,
// max_batch_tokens, max_seqs, i64 flags (bit 0: no engine follows; every other bit 0),
// i64 KV type (KvTypeCode); little-endian, like the step plan.
constexpr uint32_t kConfigMagic = 0x43455354;  // "TSEC"
constexpr uint32_t kConfigVersion = 2;
constexpr int kConfigFields = 6;
constexpr size_t kConfigBytes = 8 + 8 * kConfigFields;

// The KV type on the wire: 0 f32, 1 f16, 2 bf16.
constexpr DType kKvTypes[] = {DType::kF32, DType::kF16, DType::kBF16};
int64_t KvTypeCode(DType t) {
  for (int64_t i = 0; i < static_cast<int64_t>(std::size(kKvTypes)); ++i) {
    if (kKvTypes[i] == t) return i;
  }
  return -1;
}
// A step plan is at most this many bytes (DecodeStepPlan checks the rest against the limits).
constexpr int32_t kMaxPlanBytes = 256 << 20;
// The most alternatives a request may ask for at each output token.
constexpr int32_t kMaxTopLogprobs = 64;

absl::Status CheckConfig(const EngineConfig& c) {
  struct Range {
    const char* name;
    int64_t value, lo, hi;
  };
  for (const Range& r : {Range{"kv_blocks", c.kv_blocks, 1, INT32_MAX},
                         Range{"block_size", c.block_size, 1, 1 << 16},
                         Range{"max_batch_tokens", c.max_batch_tokens, 1, 1 << 20},
                         Range{"max_seqs", c.max_seqs, 1, 1 << 16},
                         Range{"threads", c.threads, 0, 4096}}) {
    if (r.value < r.lo || r.value > r.hi) {
      return absl::InvalidArgumentError(absl::StrCat("engine config: ", r.name, " ", r.value,
                                                     " is outside [", r.lo, ", ", r.hi, "]"));
    }
  }
  if (KvTypeCode(c.kv_type) < 0) {
    return absl::InvalidArgumentError(absl::StrCat("engine config: kv_type ", kernels::Name(c.kv_type),
                                                   " is not F32, F16 or BF16"));
  }
  return absl::OkStatus();
}

constexpr int64_t kConfigNoEngine = 1;

std::vector<uint8_t> EncodeConfig(const EngineConfig& c, int64_t flags = 0) {
  std::vector<uint8_t> b(kConfigBytes, 0);
  const uint32_t head[2] = {kConfigMagic, kConfigVersion};
  const int64_t body[kConfigFields] = {c.kv_blocks, c.block_size, c.max_batch_tokens,
                                       c.max_seqs,   flags,        KvTypeCode(c.kv_type)};
  std::memcpy(b.data(), head, sizeof(head));  // the hosts we build for are little-endian
  std::memcpy(b.data() + sizeof(head), body, sizeof(body));
  return b;
}

absl::StatusOr<EngineConfig> DecodeConfig(const std::vector<uint8_t>& b) {
  uint32_t head[2];
  int64_t body[kConfigFields];
  std::memcpy(head, b.data(), sizeof(head));
  std::memcpy(body, b.data() + sizeof(head), sizeof(body));
  if (head[0] != kConfigMagic) {
    return absl::InvalidArgumentError(
        absl::StrCat("engine config: magic 0x", absl::Hex(head[0]), " is not \"TSEC\""));
  }
  if (head[1] != kConfigVersion) {
    return absl::InvalidArgumentError(absl::StrCat("engine config: version ", head[1],
                                                   " (this build reads ", kConfigVersion, ")"));
  }
  if ((body[4] & ~kConfigNoEngine) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("engine config: flags 0x", absl::Hex(body[4]), " has unknown bits"));
  }
  if (body[4] & kConfigNoEngine) {
    return absl::CancelledError("the leader stopped before it started the engine");
  }
  if (body[5] < 0 || body[5] >= static_cast<int64_t>(std::size(kKvTypes))) {
    return absl::InvalidArgumentError(
        absl::StrCat("engine config: KV type code ", body[5], " is not 0 (f32), 1 (f16) or 2 (bf16)"));
  }
  EngineConfig c{.kv_blocks = body[0], .block_size = body[1], .max_batch_tokens = body[2],
                 .max_seqs = body[3], .kv_type = kKvTypes[body[5]]};
  if (absl::Status s = CheckConfig(c); !s.ok()) return s;
  return c;
}

serving::PlanLimits LimitsFor(const Transformer& model, const EngineConfig& c) {
  // Block ops per step: an allocation per scheduled sequence, and a free or preemption per
  // sequence that holds blocks (each holds one at least).
  return {.max_seqs = c.max_seqs,
          .max_tokens = c.max_batch_tokens,
          .max_block_ops = c.max_seqs + c.kv_blocks,
          .num_blocks = c.kv_blocks,
          .vocab = model.config().vocab,
          .max_position = model.config().context};
}

absl::StatusOr<std::unique_ptr<KvCache>> MakeCache(const Transformer& model,
                                                   const EngineConfig& c) {
  return KvCache::Create(model.CacheShape(c.kv_blocks * c.block_size, c.block_size, c.kv_type));
}

// Logits rows `s` produces on a rank that receives logits.
int64_t LogitRows(const serving::SeqStep& s) {
  return s.all_logits ? s.num_tokens : s.wants_logits ? 1 : 0;
}

// What every rank does with a plan: apply its block operations, then run the batch.
// `logits_here`: this rank takes part in computing logits (the leader, and the tp group
// that gathers them to it); others skip the LM head.
absl::Status Execute(const Transformer& model, KvCache& cache, const serving::StepPlan& plan,
                     bool logits_here, std::vector<float>& logits) {
  if (absl::Status s = cache.ApplyBlockOps(plan.kv_generation, plan.block_ops); !s.ok()) {
    return s;
  }
  std::vector<SeqChunk> batch;
  size_t t = 0;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const serving::SeqStep& s = plan.seqs[i];
    if (s.first_position != cache.length(s.seq)) {
      return absl::InvalidArgumentError(
          absl::StrCat("step plan ", plan.step, ": seqs[", i, "] (sequence ", s.seq,
                       ") starts at position ", s.first_position, ", its KV holds ",
                       cache.length(s.seq), " positions"));
    }
    if (t + s.num_tokens > plan.tokens.size()) {  // DecodeStepPlan checks this too
      return absl::InvalidArgumentError(
          absl::StrCat("step plan ", plan.step, ": seqs[", i, "] runs past the tokens"));
    }
    batch.push_back({.seq = s.seq,
                     .tokens = std::span<const int32_t>(plan.tokens).subspan(t, s.num_tokens),
                     .all_logits = logits_here && s.all_logits,
                     .logits = logits_here && s.wants_logits});
    t += s.num_tokens;
  }
  if (batch.empty()) {
    logits.clear();
    return absl::OkStatus();
  }
  return model.Forward(batch, cache, logits);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const Transformer& model,
                                                       const EngineConfig& config,
                                                       parallel::Communicator* world) {
  const bool workers = world != nullptr && world->size() > 1;
  absl::StatusOr<std::unique_ptr<Engine>> engine = CreateLocal(model, config, workers ? world : nullptr);
  if (!workers) return engine;
  if (!engine.ok()) {  // the workers are waiting for a configuration: release them
    ReleaseWorkers(*world).IgnoreError();
    return engine;
  }
  if (world->rank() != 0) {
    return absl::InvalidArgumentError("the engine runs on world rank 0; other ranks RunWorker");
  }
  std::vector<uint8_t> msg = EncodeConfig(config);
  if (absl::Status s = world->Broadcast(
          kernels::Tensor(msg.data(), DType::kU8, {static_cast<int64_t>(msg.size())}), 0);
      !s.ok()) {
    (*engine)->shutdown_ = s;  // the world is out of step: nothing more is sent
    return s;
  }
  return engine;
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::CreateLocal(const Transformer& model,
                                                            const EngineConfig& config,
                                                            parallel::Communicator* world) {
  if (absl::Status s = CheckConfig(config); !s.ok()) return s;
  if (model.tp().rank() != 0) {
    return absl::InvalidArgumentError(
        "the engine runs on the leader, which must be rank 0 of its tensor-parallel group");
  }
  absl::StatusOr<std::unique_ptr<KvCache>> cache = MakeCache(model, config);
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
  return std::unique_ptr<Engine>(
      new Engine(model, config, world, *std::move(cache), *std::move(scheduler)));
}

Engine::~Engine() {
  if (!shutdown_) Shutdown().IgnoreError();
}

absl::Status Engine::Add(EngineRequest request) {
  if (absl::Status s = Validate(request.sampling); !s.ok()) return s;
  if (request.top_logprobs < 0 || request.top_logprobs > kMaxTopLogprobs) {
    return absl::InvalidArgumentError(absl::StrCat("request ", request.id, ": top_logprobs ",
                                                   request.top_logprobs, " is outside [0, ",
                                                   kMaxTopLogprobs, "]"));
  }
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
                     .stop_tokens = sp.stop_tokens,
                     .prompt_logits = request.prompt_logits};
  if (absl::Status s = scheduler_.Add(std::move(r)); !s.ok()) return s;
  Live live{Sampler(sp), std::move(request.prompt), {}, request.top_logprobs};
  if (request.prompt_logits) live.prompt_logits.assign(live.history.size() * V, 0.0f);
  live_.emplace(request.id, std::move(live));
  return absl::OkStatus();
}

bool Engine::Cancel(serving::RequestId id) { return scheduler_.Cancel(id); }

absl::Status Engine::SendPlan(const serving::StepPlan& plan) {
  std::vector<uint8_t> bytes = serving::EncodeStepPlan(plan);
  if (bytes.size() > static_cast<size_t>(kMaxPlanBytes)) {
    return absl::ResourceExhaustedError(absl::StrCat("step plan ", plan.step, " takes ",
                                                     bytes.size(), " bytes, more than ",
                                                     kMaxPlanBytes));
  }
  int32_t n = static_cast<int32_t>(bytes.size());
  if (absl::Status s = world_->Broadcast(kernels::Tensor(&n, DType::kI32, {1}), 0); !s.ok()) {
    return s;
  }
  return world_->Broadcast(kernels::Tensor(bytes.data(), DType::kU8, {n}), 0);
}

absl::Status Engine::Shutdown() {
  if (shutdown_) return *shutdown_;
  absl::Status s;
  if (plan_in_flight_) {
    // A step failed after its plan went out: the workers are inside that step's
    // collectives, not waiting for a plan, and will fail on their timeout.
    s = broken_;
  } else if (world_ != nullptr) {
    serving::StepPlan stop;
    stop.kv_generation = cache_->blocks().generation();
    stop.stop = true;
    s = SendPlan(stop);
  }
  shutdown_ = s;
  return s;
}

absl::StatusOr<std::vector<EngineOutput>> Engine::Step() {
  if (!broken_.ok()) return broken_;
  if (shutdown_) return absl::FailedPreconditionError("the engine was shut down");
  kernels::ScopedPool on_own_threads(*pool_);
  absl::StatusOr<std::vector<EngineOutput>> out = RunStep(/*keep_alive=*/false);
  if (!out.ok()) broken_ = out.status();
  return out;
}

absl::Status Engine::KeepAlive() {
  if (world_ == nullptr || shutdown_ || !scheduler_.idle()) return absl::OkStatus();
  if (!broken_.ok()) return broken_;
  absl::StatusOr<std::vector<EngineOutput>> out = RunStep(/*keep_alive=*/true);
  if (!out.ok()) broken_ = out.status();
  return out.status();
}

absl::StatusOr<std::vector<EngineOutput>> Engine::RunStep(bool keep_alive) {
  last_step_.clear();
  if (scheduler_.idle() && !keep_alive) return std::vector<EngineOutput>{};
  // Every plan is applied once on every rank (each Apply advances the KV generation), so
  // the workers get every plan the leader applies, even one with nothing to compute.
  const serving::StepPlan plan = scheduler_.Schedule();
  const int64_t V = model_.config().vocab;
  int64_t rows = 0;
  for (const serving::SeqStep& s : plan.seqs) rows += LogitRows(s);
  // What only the leader allocates (the logits, and the gathered shards under tp) is
  // checked before the plan goes out, so that running out fails here alone and the
  // workers are stopped cleanly; the other buffers of a step are the same on every rank.
  {
    const int64_t floats = rows * V * (model_.tp().size() > 1 ? 2 : 1);
    if (absl::Status s = kernels::CheckAvailable(floats * static_cast<int64_t>(sizeof(float)),
                                                 absl::StrCat("the logits of step ", plan.step));
        !s.ok()) {
      return s;
    }
    try {
      logits_.reserve(rows * V);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the logits of step ", plan.step, ": the allocation failed"));
    }
  }
  if (world_ != nullptr) {
    if (absl::Status s = SendPlan(plan); !s.ok()) return s;
    plan_in_flight_ = true;
  }
  if (absl::Status s = Execute(model_, *cache_, plan, /*logits_here=*/true, logits_); !s.ok()) {
    return s;
  }
  plan_in_flight_ = false;
  ++steps_;
  for (const serving::SeqStep& s : plan.seqs) last_step_.push_back(s.seq);
  if (static_cast<int64_t>(logits_.size()) != rows * V) {
    return absl::InternalError(absl::StrCat("step ", plan.step, ": the model returned ",
                                            logits_.size(), " logits, expected ", rows, " x ", V));
  }
  std::vector<int32_t> sampled;
  std::map<serving::RequestId, float> logprob;
  std::map<serving::RequestId, std::vector<Sample>> top;
  std::map<serving::RequestId, absl::Status> failed;
  int64_t row = 0;
  for (const serving::SeqStep& s : plan.seqs) {
    Live& live = live_.at(s.seq);
    const int64_t n = LogitRows(s);
    if (s.all_logits) {  // keep the prompt positions' rows (a recompute rewrites the same)
      const int64_t prompt = static_cast<int64_t>(live.prompt_logits.size()) / V;
      for (int64_t i = 0; i < n && s.first_position + i < prompt; ++i) {
        std::memcpy(live.prompt_logits.data() + (s.first_position + i) * V,
                    logits_.data() + (row + i) * V, sizeof(float) * V);
      }
    }
    if (s.wants_logits) {
      absl::StatusOr<Sample> next = live.sampler.Next(
          std::span<const float>(logits_.data() + (row + n - 1) * V, V), live.history);
      if (next.ok()) {
        sampled.push_back(next->id);
        logprob[s.seq] = next->logprob;
        if (live.top_logprobs > 0) {
          top[s.seq] = TopLogprobs(
              std::span<const float>(logits_.data() + (row + n - 1) * V, V), live.top_logprobs);
        }
      } else {  // this request fails alone; a placeholder keeps the plan's shape
        sampled.push_back(0);
        failed[s.seq] = absl::Status(next.status().code(),
                                     absl::StrCat("request ", s.seq, ": ", next.status().message()));
      }
    }
    row += n;
  }
  absl::StatusOr<std::vector<serving::RequestEvent>> events = scheduler_.Update(plan, sampled);
  if (!events.ok()) return events.status();
  std::vector<EngineOutput> out;
  for (auto& [id, status] : failed) {
    scheduler_.Cancel(id);  // false if it also finished this step: its blocks go either way
    out.push_back({.id = id, .tokens = {}, .finish = serving::FinishReason::kCancelled,
                   .error = status});
    live_.erase(id);
  }
  for (const serving::RequestEvent& e : *events) {
    auto it = live_.find(e.id);
    if (it == live_.end()) continue;  // failed above
    EngineOutput o{.id = e.id, .tokens = e.tokens, .finish = e.finish};
    for (int32_t tok : e.tokens) {
      o.logprobs.push_back(logprob.at(e.id));
      if (auto t = top.find(e.id); t != top.end()) o.top.push_back(t->second);
      it->second.history.push_back(tok);
    }
    if (e.finish) {
      o.prompt_logits = std::move(it->second.prompt_logits);
      live_.erase(it);
    }
    out.push_back(std::move(o));
  }
  return out;
}

absl::Status ReleaseWorkers(parallel::Communicator& world) {
  if (world.size() == 1) return absl::OkStatus();
  std::vector<uint8_t> msg = EncodeConfig({}, kConfigNoEngine);
  return world.Broadcast(
      kernels::Tensor(msg.data(), DType::kU8, {static_cast<int64_t>(msg.size())}), 0);
}

absl::Status RunWorker(const Transformer& model, parallel::Communicator& world, int threads) {
  kernels::ThreadPool pool(threads > 0 ? threads : kernels::DefaultThreadCount());
  kernels::ScopedPool on_own_threads(pool);
  std::vector<uint8_t> msg(kConfigBytes);
  if (absl::Status s = world.Broadcast(
          kernels::Tensor(msg.data(), DType::kU8, {static_cast<int64_t>(msg.size())}), 0);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<EngineConfig> config = DecodeConfig(msg);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::unique_ptr<KvCache>> cache = MakeCache(model, *config);
  if (!cache.ok()) return cache.status();
  const serving::PlanLimits limits = LimitsFor(model, *config);
  // Ranks of a tensor-parallel group gather logits to its rank 0; a worker alone in its
  // group (expert parallelism only) skips the LM head.
  const bool logits_here = model.tp().size() > 1;
  std::vector<float> logits;
  std::vector<uint8_t> bytes;
  std::optional<uint64_t> last_step;
  for (;;) {
    int32_t n = 0;
    if (absl::Status s = world.Broadcast(kernels::Tensor(&n, DType::kI32, {1}), 0); !s.ok()) {
      return s;
    }
    if (n <= 0 || n > kMaxPlanBytes) {
      return absl::InvalidArgumentError(absl::StrCat("step plan: size ", n,
                                                     " bytes is outside [1, ", kMaxPlanBytes, "]"));
    }
    bytes.resize(n);
    if (absl::Status s = world.Broadcast(kernels::Tensor(bytes.data(), DType::kU8, {n}), 0);
        !s.ok()) {
      return s;
    }
    absl::StatusOr<serving::StepPlan> plan = serving::DecodeStepPlan(bytes, limits);
    if (!plan.ok()) return plan.status();
    if (plan->stop) return absl::OkStatus();
    if (last_step && plan->step <= *last_step) {
      return absl::InvalidArgumentError(absl::StrCat("step plan: step ", plan->step,
                                                     " is not after step ", *last_step,
                                                     " (a replayed plan)"));
    }
    last_step = plan->step;
    if (absl::Status s = Execute(model, **cache, *plan, logits_here, logits); !s.ok()) return s;
  }
}

}  // namespace tessera
