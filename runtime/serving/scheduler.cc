#include "runtime/serving/scheduler.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"

namespace tessera::serving {

int32_t Scheduler::Req::token(int64_t i) const {
  const int64_t p = static_cast<int64_t>(request.prompt.size());
  return i < p ? request.prompt[i] : output[i - p];
}

absl::StatusOr<Scheduler> Scheduler::Create(const SchedulerConfig& config, KvBlockManager kv) {
  if (config.max_batch_tokens < 1 || config.max_seqs < 1 || config.max_context < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler: max_batch_tokens (", config.max_batch_tokens, "), max_seqs (",
        config.max_seqs, ") and max_context (", config.max_context, ") must be >= 1"));
  }
  return Scheduler(config, std::move(kv));
}

Scheduler::Scheduler(const SchedulerConfig& config, KvBlockManager kv)
    : config_(config), kv_(std::move(kv)) {}

absl::Status Scheduler::Add(Request request) {
  const RequestId id = request.id;
  const int64_t prompt = static_cast<int64_t>(request.prompt.size());
  if (prompt == 0) return absl::InvalidArgumentError(absl::StrCat("request ", id, ": empty prompt"));
  if (requests_.count(id) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("request ", id, ": the id is in use"));
  }
  if (request.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("request ", id, ": max_tokens ", request.max_tokens, " is not positive"));
  }
  // The context bounds the sequence; generation stops there (finish reason length).
  if (prompt >= config_.max_context) {
    return absl::InvalidArgumentError(absl::StrCat("request ", id, ": the prompt's ", prompt,
                                                   " tokens leave no room in the context of ",
                                                   config_.max_context));
  }
  const int64_t longest = std::min(prompt + request.max_tokens, config_.max_context);
  const int64_t blocks = kv_.BlocksFor(longest);
  if (blocks > kv_.num_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "request ", id, " can never fit: ", longest, " tokens need ", blocks, " KV blocks of ",
        kv_.block_size(), ", the pool has ", kv_.num_blocks()));
  }
  Req r;
  r.request = std::move(request);
  r.arrival = next_arrival_++;
  requests_.emplace(id, std::move(r));
  waiting_.push_back(id);
  return absl::OkStatus();
}

bool Scheduler::Cancel(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end() || it->second.state == State::kDone) return false;
  it->second.state = State::kDone;
  it->second.finish = FinishReason::kCancelled;
  return true;
}

StepPlan Scheduler::Schedule() const {
  StepPlan plan;
  plan.step = step_;
  plan.kv_generation = kv_.generation();
  BlockPlanner bp(kv_);
  // 1. Finished and cancelled requests give their blocks back.
  for (const auto& [id, r] : requests_) {
    if (r.state == State::kDone && kv_.Has(id)) (void)bp.Release(id);
  }
  int64_t budget = config_.max_batch_tokens;
  std::set<RequestId> preempted;
  auto add = [&](RequestId id, const Req& r, int64_t n) {
    SeqStep s;
    s.seq = id;
    s.first_position = static_cast<int32_t>(r.computed);
    s.num_tokens = static_cast<int32_t>(n);
    s.wants_logits = r.computed + n == r.known();
    s.all_logits = r.request.prompt_logits &&
                   r.computed < static_cast<int64_t>(r.request.prompt.size());
    s.sampling = r.request.sampling;
    plan.seqs.push_back(s);
    for (int64_t i = r.computed; i < r.computed + n; ++i) plan.tokens.push_back(r.token(i));
    budget -= n;
  };
  // 2, 3. Running requests, decodes before prefill chunks, oldest first; when blocks run
  // out, the newest running request is preempted (possibly the one being scheduled).
  std::vector<RequestId> live;
  for (RequestId id : running_) {
    if (requests_.at(id).state == State::kRunning) live.push_back(id);
  }
  std::vector<RequestId> scheduled;
  for (bool decode : {true, false}) {
    for (RequestId id : live) {
      const Req& r = requests_.at(id);
      const bool decoding = r.computed >= static_cast<int64_t>(r.request.prompt.size());
      if (decoding != decode || preempted.count(id) != 0 || budget <= 0) continue;
      const int64_t n = std::min(r.known() - r.computed, budget);
      if (n <= 0) continue;
      bool fits = false;
      while (!(fits = bp.Reserve(id, r.computed + n).ok())) {
        // The newest live request not yet preempted nor scheduled this step, else this one.
        RequestId victim = id;
        for (auto it = live.rbegin(); it != live.rend(); ++it) {
          if (preempted.count(*it) == 0 &&
              std::find(scheduled.begin(), scheduled.end(), *it) == scheduled.end()) {
            victim = *it;
            break;
          }
        }
        if (kv_.Has(victim)) (void)bp.Release(victim, /*preempt=*/true);
        preempted.insert(victim);
        if (victim == id) break;
      }
      if (!fits) continue;
      scheduled.push_back(id);
      add(id, r, n);
    }
  }
  // 4. Admission, first come first served, while budget, sequence cap and KV allow.
  int64_t seqs = static_cast<int64_t>(live.size() - preempted.size());
  for (RequestId id : waiting_) {
    const Req& r = requests_.at(id);
    if (r.state != State::kWaiting) continue;
    if (budget <= 0 || seqs >= config_.max_seqs) break;
    const int64_t n = std::min(r.known() - r.computed, budget);
    if (!bp.Reserve(id, r.computed + n).ok()) break;  // head of line waits for blocks
    ++seqs;
    add(id, r, n);
  }
  plan.block_ops = bp.TakeOps();
  return plan;
}

absl::StatusOr<std::vector<RequestEvent>> Scheduler::Update(const StepPlan& plan,
                                                            std::span<const int32_t> sampled) {
  if (plan.step != step_) {
    return absl::FailedPreconditionError(
        absl::StrCat("scheduler: plan for step ", plan.step, ", the scheduler is at ", step_));
  }
  // Validate everything before changing anything.
  size_t want = 0;
  for (const SeqStep& s : plan.seqs) {
    auto it = requests_.find(s.seq);
    if (it == requests_.end() || it->second.state == State::kDone ||
        s.first_position != it->second.computed ||
        s.first_position + s.num_tokens > it->second.known()) {
      return absl::InvalidArgumentError(
          absl::StrCat("scheduler: the plan's sequence ", s.seq, " does not match its request"));
    }
    want += s.wants_logits;
  }
  if (sampled.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat("scheduler: ", sampled.size(),
                                                   " sampled tokens for ", want, " sequences"));
  }
  if (absl::Status s = kv_.Apply(plan.kv_generation, plan.block_ops); !s.ok()) return s;

  std::vector<RequestEvent> events;
  std::vector<RequestId> requeue;
  for (const BlockOp& op : plan.block_ops) {
    Req& r = requests_.at(op.seq);
    if (op.kind == BlockOp::Kind::kPreempt) {
      ++preemptions_;
      r.computed = 0;
      if (r.state == State::kRunning) r.state = State::kWaiting;
      running_.erase(std::find(running_.begin(), running_.end(), op.seq));
      requeue.push_back(op.seq);
    }
  }
  // Preempted requests go back to the front of the queue, oldest first.
  std::sort(requeue.begin(), requeue.end(), [&](RequestId a, RequestId b) {
    return requests_.at(a).arrival < requests_.at(b).arrival;
  });
  waiting_.insert(waiting_.begin(), requeue.begin(), requeue.end());

  size_t k = 0;
  for (const SeqStep& s : plan.seqs) {
    Req& r = requests_.at(s.seq);
    if (r.state == State::kWaiting) {
      waiting_.erase(std::find(waiting_.begin(), waiting_.end(), s.seq));
      running_.push_back(s.seq);
      r.state = State::kRunning;
    }
    r.computed += s.num_tokens;
    (void)kv_.SetLength(s.seq, r.computed);  // fits: the plan reserved the blocks
    if (!s.wants_logits) continue;
    const int32_t t = sampled[k++];
    r.output.push_back(t);
    RequestEvent e{.id = s.seq, .tokens = {t}};
    const auto& stops = r.request.stop_tokens;
    if (std::find(stops.begin(), stops.end(), t) != stops.end()) {
      r.finish = FinishReason::kStop;
    } else if (static_cast<int64_t>(r.output.size()) >= r.request.max_tokens ||
               r.known() >= config_.max_context) {
      r.finish = FinishReason::kLength;
    }
    if (r.finish) {
      r.state = State::kDone;
      e.finish = r.finish;
    }
    events.push_back(std::move(e));
  }
  // Requests that are done and hold no blocks are forgotten; a cancellation is reported
  // now (a finish was reported with its last token).
  for (auto it = requests_.begin(); it != requests_.end();) {
    Req& r = it->second;
    if (r.state != State::kDone || kv_.Has(it->first)) {
      ++it;
      continue;
    }
    if (r.finish == FinishReason::kCancelled) {
      events.push_back({.id = it->first, .finish = FinishReason::kCancelled});
    }
    running_.erase(std::remove(running_.begin(), running_.end(), it->first), running_.end());
    waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), it->first), waiting_.end());
    it = requests_.erase(it);
  }
  ++step_;
  return events;
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  for (const auto& [id, r] : requests_) {
    s.waiting += r.state == State::kWaiting;
    s.running += r.state == State::kRunning;
  }
  s.preemptions = preemptions_;
  s.kv_blocks_free = kv_.free_blocks();
  s.kv_blocks_used = kv_.num_blocks() - kv_.free_blocks();
  return s;
}

}  // namespace tessera::serving
