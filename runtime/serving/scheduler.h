// The replica's scheduler: continuous batching over one KV block manager.
//
// Requests join and leave between steps. Each step, Schedule() reads the waiting and
// running requests and the KV manager and returns a step plan; it changes nothing. Update()
// is the one mutation: it applies the plan's block operations to the KV manager, advances
// each request by the tokens the plan computed and the tokens the leader sampled, and
// returns what happened to each request (new tokens, finished, cancelled).
//
// Policy, per step:
//   1. requests that finished or were cancelled release their blocks;
//   2. running requests that are decoding take one token each, oldest first; when the KV
//      pool runs out, the newest running request is preempted (its blocks freed, it goes
//      back to the front of the queue and is recomputed later: the same tokens result);
//   3. running requests still in prefill take the next chunk of their prompt;
//   4. waiting requests are admitted first come, first served while the token budget
//      (max_batch_tokens), the sequence cap (max_seqs) and the KV pool allow; a long
//      prompt is cut into chunks so it never stalls the running decodes. Only the chunk
//      that reaches a request's last known token asks for logits.
// A request that could never fit (longer than the context, or than the whole KV pool) is
// refused by Add() with the numbers. The scheduler does not sample and knows no text: the
// engine samples on the leader and handles stop strings.
//
// Not thread-safe: the leader's step loop owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/serving/kv_block_manager.h"
#include "runtime/serving/step_plan.h"

namespace tessera::serving {

using RequestId = SeqId;

struct Request {
  RequestId id = 0;
  std::vector<int32_t> prompt;
  SamplingState sampling;
  int32_t max_tokens = 128;          // new tokens at most
  std::vector<int32_t> stop_tokens;  // generation ends after emitting one of these
  bool prompt_logits = false;        // the plan asks for every prompt position's logits
};

struct SchedulerConfig {
  int64_t max_batch_tokens = 2048;  // tokens computed per step, all sequences together
  int64_t max_seqs = 64;            // sequences running at once
  int64_t max_context = 4096;       // prompt + generated tokens of one request
};

enum class FinishReason { kStop, kLength, kCancelled };

// What one Update() did to one request.
struct RequestEvent {
  RequestId id = 0;
  std::vector<int32_t> tokens = {};     // sampled this step (at most one today)
  std::optional<FinishReason> finish = {};  // set once, on the request's last event
};

struct SchedulerStats {
  int64_t waiting = 0, running = 0;
  int64_t preemptions = 0;  // since construction
  int64_t kv_blocks_used = 0, kv_blocks_free = 0;
};

class Scheduler {
 public:
  static absl::StatusOr<Scheduler> Create(const SchedulerConfig& config, KvBlockManager kv);

  // Queues `request`. InvalidArgument for an empty prompt, an id in use, max_tokens < 1 or
  // a prompt + max_tokens over the context; ResourceExhausted when it needs more KV blocks
  // than the pool has.
  absl::Status Add(Request request);
  // Cancels a queued or running request; its blocks are freed by the next step. Returns
  // false for an unknown (or already finished) id.
  bool Cancel(RequestId id);

  // The next step's plan (pure). Empty (no sequences, no block ops) when there is nothing
  // to do.
  StepPlan Schedule() const;
  // Applies `plan` (made by Schedule() on this state) with `sampled`: one token per
  // sequence of the plan that wanted logits, in plan order. Fails, changing nothing, when
  // the plan does not match the state.
  absl::StatusOr<std::vector<RequestEvent>> Update(const StepPlan& plan,
                                                   std::span<const int32_t> sampled);

  bool idle() const { return requests_.empty(); }
  SchedulerStats stats() const;
  const KvBlockManager& kv() const { return kv_; }

 private:
  enum class State { kWaiting, kRunning, kDone };
  struct Req {
    Request request;
    std::vector<int32_t> output;
    int64_t computed = 0;  // tokens whose KV is in the cache
    uint64_t arrival = 0;
    State state = State::kWaiting;
    std::optional<FinishReason> finish;  // kDone: why; its blocks go at the next step
    int64_t known() const { return static_cast<int64_t>(request.prompt.size() + output.size()); }
    int32_t token(int64_t i) const;
  };

  Scheduler(const SchedulerConfig& config, KvBlockManager kv);

  // Immutable after construction.
  SchedulerConfig config_;
  // Mutable state, changed only by Add, Cancel and Update.
  KvBlockManager kv_;
  std::map<RequestId, Req> requests_;
  std::deque<RequestId> waiting_;  // FCFS; preempted requests go back to the front
  std::vector<RequestId> running_; // admission order
  uint64_t next_arrival_ = 0;
  uint64_t step_ = 0;
  int64_t preemptions_ = 0;
};

}  // namespace tessera::serving
