#include "rpc/worker.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "tessera/v1/replica.grpc.pb.h"

namespace tessera::rpc {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kIdleWait = std::chrono::milliseconds(50);

// Messages from the coordinator, from the reader thread to the engine's thread.
class Inbox {
 public:
  explicit Inbox(size_t capacity) : capacity_(capacity) {}
  // Blocks while full; false once closed.
  bool Push(v1::CoordinatorMessage m) {
    std::unique_lock<std::mutex> l(mu_);
    not_full_.wait(l, [&] { return q_.size() < capacity_ || closed_; });
    if (closed_) return false;
    q_.push_back(std::move(m));
    not_empty_.notify_one();
    return true;
  }
  void Close() {
    std::lock_guard<std::mutex> l(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }
  // Everything queued, waiting up to `wait` for a first message.
  std::deque<v1::CoordinatorMessage> Drain(Clock::duration wait, bool* closed) {
    std::unique_lock<std::mutex> l(mu_);
    if (wait > Clock::duration::zero()) {
      not_empty_.wait_for(l, wait, [&] { return !q_.empty() || closed_; });
    }
    std::deque<v1::CoordinatorMessage> out;
    out.swap(q_);
    *closed = closed_;
    not_full_.notify_all();
    return out;
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<v1::CoordinatorMessage> q_;
  bool closed_ = false;
};

struct Live {
  Clock::time_point received;
  std::optional<Clock::time_point> deadline = {};
  bool started = false;  // a step computed some of its tokens
  bool expired = false;  // cancelled because its deadline passed
  std::optional<double> queue_s = {};  // received until its first step, not yet sent
};

const char* FinishName(serving::FinishReason r) {
  switch (r) {
    case serving::FinishReason::kStop: return "stop";
    case serving::FinishReason::kLength: return "length";
    case serving::FinishReason::kCancelled: return "cancelled";
  }
  return "error";
}

void FailEvent(v1::Events& out, uint64_t id, const absl::Status& s) {
  v1::Event* e = out.add_events();
  e->set_id(id);
  e->set_finish("error");
  e->set_error_code(static_cast<int>(s.code()));
  e->set_error_message(std::string(s.message()));
}

}  // namespace

absl::Status ServeReplica(Engine& engine, std::shared_ptr<grpc::Channel> channel,
                          const WorkerOptions& opt, const std::atomic<bool>& stop) {
  std::unique_ptr<v1::Replica::Stub> stub = v1::Replica::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);  // the caller checked that the coordinator can be reached
  auto stream = stub->Connect(&ctx);
  {
    v1::WorkerMessage m;
    v1::Register* r = m.mutable_register_();
    r->set_protocol_version(kProtocolVersion);
    r->set_model_name(opt.model.name);
    r->set_model_checksum(opt.model.checksum);
    r->set_architecture(opt.model.architecture);
    r->set_context_length(opt.model.context);
    r->set_vocab_size(opt.model.vocab);
    r->set_tensor_parallel(opt.tensor_parallel);
    r->set_expert_parallel(opt.expert_parallel);
    r->set_kv_blocks(engine.config().kv_blocks);
    r->set_block_size(static_cast<int32_t>(engine.config().block_size));
    r->set_max_seqs(engine.config().max_seqs);
    r->set_max_batch_tokens(engine.config().max_batch_tokens);
    r->set_host(opt.host);
    v1::CoordinatorMessage ack;
    if (!stream->Write(m) || !stream->Read(&ack) || !ack.has_registered()) {
      stream->WritesDone();
      const grpc::Status s = stream->Finish();
      return absl::Status(static_cast<absl::StatusCode>(s.ok() ? grpc::StatusCode::UNAVAILABLE
                                                               : s.error_code()),
                          absl::StrCat("the coordinator refused the replica: ",
                                       s.ok() ? "it closed the stream" : s.error_message()));
    }
    std::fprintf(stderr, "tessera replica: registered as %s (model %s, checksum %s)\n",
                 ack.registered().replica().c_str(), opt.model.name.c_str(),
                 opt.model.checksum.c_str());
    if (opt.on_registered) opt.on_registered();
  }

  Inbox inbox(opt.inbox);
  std::thread reader([&] {
    v1::CoordinatorMessage m;
    while (stream->Read(&m)) {
      if (!inbox.Push(std::move(m))) break;
    }
    inbox.Close();
  });

  std::map<uint64_t, Live> live;
  absl::Status result;
  Clock::time_point last_step = Clock::now();
  bool closed = false;
  int64_t expired_in_queue = 0;
  while (!stop.load() && result.ok()) {
    v1::Events out;
    const bool idle = engine.idle();
    for (v1::CoordinatorMessage& m : inbox.Drain(idle ? kIdleWait : Clock::duration::zero(), &closed)) {
      if (m.has_submit()) {
        const v1::Submit& s = m.submit();
        if (live.count(s.id()) > 0) {
          FailEvent(out, s.id(), absl::InvalidArgumentError(absl::StrCat(
                                     "request ", s.id(), " is already running here")));
          continue;
        }
        const v1::ReplicaSampling& rs = s.sampling();
        EngineRequest r{.id = static_cast<serving::RequestId>(s.id()),
                        .prompt = {s.prompt().begin(), s.prompt().end()},
                        .sampling = {.temperature = rs.temperature(),
                                     .top_k = rs.top_k(),
                                     .top_p = rs.top_p(),
                                     .min_p = rs.min_p(),
                                     .repetition_penalty = rs.repetition_penalty(),
                                     .seed = rs.seed(),
                                     .max_new_tokens = s.max_tokens(),
                                     .stop_tokens = {s.stop_token_ids().begin(),
                                                     s.stop_token_ids().end()}},
                        .top_logprobs = std::max(0, s.top_logprobs())};
        if (absl::Status st = engine.Add(std::move(r)); !st.ok()) {
          FailEvent(out, s.id(), st);
          continue;
        }
        Live l{.received = Clock::now()};
        if (s.deadline_us() > 0) l.deadline = l.received + std::chrono::microseconds(s.deadline_us());
        live.emplace(s.id(), l);
      } else if (m.has_cancel()) {
        auto it = live.find(m.cancel().id());
        if (it != live.end() && m.cancel().deadline()) it->second.expired = true;
        engine.Cancel(static_cast<serving::RequestId>(m.cancel().id()));
      }
    }
    if (closed) break;
    const Clock::time_point now = Clock::now();
    for (auto& [id, l] : live) {
      if (!l.expired && l.deadline && now >= *l.deadline) {
        l.expired = true;
        engine.Cancel(static_cast<serving::RequestId>(id));
      }
    }
    bool stepped = false;
    if (!engine.idle()) {
      const Clock::time_point step_start = Clock::now();
      absl::StatusOr<std::vector<EngineOutput>> step = engine.Step();
      stepped = true;
      last_step = Clock::now();
      if (!step.ok()) {
        result = step.status();
        for (const auto& [id, l] : live) FailEvent(out, id, step.status());
        live.clear();
      } else {
        for (serving::RequestId id : engine.last_step_requests()) {
          auto it = live.find(static_cast<uint64_t>(id));
          if (it == live.end() || it->second.started) continue;
          it->second.started = true;
          it->second.queue_s =
              std::chrono::duration<double>(step_start - it->second.received).count();
        }
        for (EngineOutput& o : *step) {
          auto it = live.find(static_cast<uint64_t>(o.id));
          if (it == live.end()) continue;
          v1::Event* e = out.add_events();
          e->set_id(static_cast<uint64_t>(o.id));
          for (size_t i = 0; i < o.tokens.size(); ++i) {
            v1::TokenOut* t = e->add_tokens();
            t->set_id(o.tokens[i]);
            if (i < o.logprobs.size()) t->set_logprob(o.logprobs[i]);
            if (i < o.top.size()) {
              for (const Sample& s : o.top[i]) {
                v1::TopToken* x = t->add_top();
                x->set_id(s.id);
                x->set_logprob(s.logprob);
              }
            }
          }
          if (!o.error.ok()) {
            e->set_finish("error");
            e->set_error_code(static_cast<int>(o.error.code()));
            e->set_error_message(std::string(o.error.message()));
          } else if (o.finish) {
            const bool expired = *o.finish == serving::FinishReason::kCancelled && it->second.expired;
            e->set_finish(expired ? "deadline" : FinishName(*o.finish));
            if (expired && !it->second.started) ++expired_in_queue;
          }
          if (it->second.queue_s) {
            e->set_queue_time_s(*it->second.queue_s);
            it->second.queue_s.reset();
          }
          if (o.finish) live.erase(it);
        }
      }
    } else if (now - last_step > std::chrono::duration<double>(opt.keep_alive_s)) {
      if (absl::Status s = engine.KeepAlive(); !s.ok()) result = s;
      last_step = Clock::now();
    }
    if (!stepped && out.events().empty()) continue;  // nothing to tell
    const serving::SchedulerStats st = engine.stats();
    v1::Load* load = out.mutable_load();
    load->set_queued(st.waiting);
    load->set_running(st.running);
    load->set_kv_blocks_used(st.kv_blocks_used);
    load->set_kv_blocks_free(st.kv_blocks_free);
    load->set_steps(engine.steps());
    load->set_expired_in_queue(expired_in_queue);
    v1::WorkerMessage msg;
    *msg.mutable_events() = std::move(out);
    if (!stream->Write(msg)) {
      if (result.ok()) result = absl::UnavailableError("the coordinator's stream closed");
      break;
    }
  }
  for (const auto& [id, l] : live) engine.Cancel(static_cast<serving::RequestId>(id));
  ctx.TryCancel();
  inbox.Close();
  reader.join();
  stream->Finish();
  return result;
}

}  // namespace tessera::rpc
