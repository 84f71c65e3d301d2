#include "rpc/coordinator.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "rpc/parse_errors.h"
#include "runtime/serving/stop_strings.h"
#include "runtime/tokenizer/unicode.h"
#include "tessera/v1/inference.grpc.pb.h"
#include "tessera/v1/replica.grpc.pb.h"

namespace tessera::rpc {
namespace {

using Clock = std::chrono::steady_clock;
using ReplicaStream = grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::WorkerMessage>;

constexpr auto kPollInterval = std::chrono::milliseconds(20);  // client cancellation checks
constexpr size_t kMaxSessions = 1 << 16;                        // pinned session keys kept

// absl and gRPC codes are both google.rpc.Code.
grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

bool Retryable(int code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

// One accepted request: its Generate handler waits on it, its replica's reader fills it.
struct Pending {
  uint64_t id = 0;
  std::string client_id;
  int64_t reserved = 0;  // tokens it adds to its replica's outstanding count (State::mu)
  std::mutex mu;
  std::condition_variable cv;
  std::deque<v1::Event> events;      // from the replica, not yet handled
  bool aborted = false;              // Abort(request_id)
  std::optional<absl::Status> lost;  // the replica went away (or the coordinator stops)

  void Notify(auto&& change) {
    {
      std::lock_guard<std::mutex> l(mu);
      change();
    }
    cv.notify_all();
  }
};

// One connected replica (its leader's stream).
struct ReplicaConn {
  std::string name;
  v1::Register info;
  ReplicaStream* stream = nullptr;
  std::mutex write_mu;
  bool open = true;  // guarded by write_mu: false once the stream's handler is leaving
  // Guarded by State::mu.
  std::map<uint64_t, std::shared_ptr<Pending>> pending;
  int64_t outstanding = 0;
  uint64_t last_routed = 0;  // State::routed when a request last went here (ties: oldest wins)
  v1::Load load;

  bool Send(const v1::CoordinatorMessage& m) {
    std::lock_guard<std::mutex> l(write_mu);
    return open && stream->Write(m);
  }
  bool Cancel(uint64_t id, bool deadline) {
    v1::CoordinatorMessage m;
    m.mutable_cancel()->set_id(id);
    m.mutable_cancel()->set_deadline(deadline);
    return Send(m);
  }
};

}  // namespace

struct Coordinator::State {
  State(ModelIdentity m, const tokenizer::Tokenizer& t, CoordinatorOptions o)
      : model(std::move(m)), tok(t), options(std::move(o)) {}

  const ModelIdentity model;
  const tokenizer::Tokenizer& tok;
  const CoordinatorOptions options;

  mutable std::mutex mu;
  std::vector<std::shared_ptr<ReplicaConn>> replicas;
  std::map<std::string, std::shared_ptr<Pending>> by_client_id;
  std::map<std::string, std::string> sessions;  // session key -> replica name
  std::deque<std::string> session_order;        // oldest first, to bound `sessions`
  int64_t inflight = 0;
  uint64_t routed = 0;
  uint64_t next_id = 1;
  int64_t next_replica = 1;
  grpc::Server* server = nullptr;
  bool shutting_down = false;

  // mu held.
  void UpdateHealth() {
    if (server == nullptr || server->GetHealthCheckService() == nullptr) return;
    const bool serving = !replicas.empty() && !shutting_down;
    for (const std::string& service : {std::string(), model.name, std::string("tessera.v1.Inference")}) {
      server->GetHealthCheckService()->SetServingStatus(service, serving);
    }
  }

  // mu held. The replica for a new request: its session's, else the one with the least
  // outstanding tokens (on a tie, the one that least recently got a request).
  std::shared_ptr<ReplicaConn> Route(const std::string& session_key) {
    if (!session_key.empty()) {
      auto it = sessions.find(session_key);
      if (it != sessions.end()) {
        for (const auto& r : replicas) {
          if (r->name == it->second) {
            r->last_routed = ++routed;
            return r;
          }
        }
      }
    }
    std::shared_ptr<ReplicaConn> best;
    for (const auto& r : replicas) {
      if (!best || r->outstanding < best->outstanding ||
          (r->outstanding == best->outstanding && r->last_routed < best->last_routed)) {
        best = r;
      }
    }
    if (best) best->last_routed = ++routed;
    if (best && !session_key.empty()) {
      if (sessions.insert_or_assign(session_key, best->name).second) {
        session_order.push_back(session_key);
        if (session_order.size() > kMaxSessions) {
          sessions.erase(session_order.front());
          session_order.pop_front();
        }
      }
    }
    return best;
  }
};

namespace {

// An open request's registration: made when it is accepted, undone however the Generate
// handler leaves. Unless the replica already finished the request, it is told to cancel.
class OpenRequest {
 public:
  OpenRequest(Coordinator::State& st, std::shared_ptr<ReplicaConn> rep, std::shared_ptr<Pending> p)
      : st_(st), rep_(std::move(rep)), p_(std::move(p)) {}
  ~OpenRequest() {
    {
      std::lock_guard<std::mutex> l(st_.mu);
      rep_->pending.erase(p_->id);
      rep_->outstanding -= p_->reserved;
      auto it = st_.by_client_id.find(p_->client_id);
      if (it != st_.by_client_id.end() && it->second == p_) st_.by_client_id.erase(it);
      --st_.inflight;
    }
    if (!replica_done_) rep_->Cancel(p_->id, deadline_);
  }
  OpenRequest(const OpenRequest&) = delete;
  OpenRequest& operator=(const OpenRequest&) = delete;
  void ReplicaDone() { replica_done_ = true; }
  void DeadlinePassed() { deadline_ = true; }

 private:
  Coordinator::State& st_;
  std::shared_ptr<ReplicaConn> rep_;
  std::shared_ptr<Pending> p_;
  bool replica_done_ = false;
  bool deadline_ = false;
};

// The end of `text` to send now: `stable` bytes, less an incomplete UTF-8 tail.
size_t SendableEnd(const std::string& text, size_t stable) {
  return stable - tokenizer::IncompleteUtf8Tail(absl::string_view(text).substr(0, stable));
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

class Coordinator::InferenceImpl final : public v1::Inference::Service {
 public:
  explicit InferenceImpl(State& st) : st_(st) {}

  grpc::Status Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* req,
                        grpc::ServerWriter<v1::GenerateEvent>* writer) override {
    absl::StatusOr<GenerateSpec> spec = ToGenerateSpec(*req, st_.model, st_.tok, st_.options.limits);
    if (!spec.ok()) return ToGrpc(spec.status());
    absl::StatusOr<serving::StopStrings> stops = serving::StopStrings::Create(spec->stops);
    if (!stops.ok()) return ToGrpc(stops.status());
    const int64_t tokens =
        static_cast<int64_t>(spec->prompt.size()) + spec->sampling.max_new_tokens;
    auto p = std::make_shared<Pending>();
    std::shared_ptr<ReplicaConn> rep;
    {
      std::lock_guard<std::mutex> l(st_.mu);
      if (st_.shutting_down) return {grpc::StatusCode::UNAVAILABLE, "the server is shutting down"};
      if (st_.inflight >= st_.options.max_inflight) {
        return {grpc::StatusCode::RESOURCE_EXHAUSTED,
                absl::StrCat("the coordinator has ", st_.inflight,
                             " requests open, its limit (--max-inflight); retry later")};
      }
      if (st_.replicas.empty()) {
        return {grpc::StatusCode::UNAVAILABLE,
                absl::StrCat("no replica of model \"", st_.model.name, "\" is connected")};
      }
      if (!spec->request_id.empty() && st_.by_client_id.count(spec->request_id) > 0) {
        return {grpc::StatusCode::ALREADY_EXISTS,
                absl::StrCat("request_id: \"", spec->request_id, "\" is already open")};
      }
      rep = st_.Route(spec->session_key);
      p->id = st_.next_id++;
      p->client_id = spec->request_id.empty() ? absl::StrCat("req-", p->id) : spec->request_id;
      p->reserved = tokens;
      rep->outstanding += tokens;
      rep->pending[p->id] = p;
      st_.by_client_id[p->client_id] = p;
      ++st_.inflight;
    }
    OpenRequest open(st_, rep, p);
    const Clock::time_point accepted_at = Clock::now();
    {
      v1::CoordinatorMessage m;
      v1::Submit* s = m.mutable_submit();
      s->set_id(p->id);
      s->mutable_prompt()->Assign(spec->prompt.begin(), spec->prompt.end());
      const SamplingParams& sp = spec->sampling;
      v1::ReplicaSampling* rs = s->mutable_sampling();
      rs->set_temperature(sp.temperature);
      rs->set_top_k(sp.top_k);
      rs->set_top_p(sp.top_p);
      rs->set_min_p(sp.min_p);
      rs->set_repetition_penalty(sp.repetition_penalty);
      rs->set_seed(sp.seed);
      s->set_max_tokens(sp.max_new_tokens);
      s->mutable_stop_token_ids()->Assign(sp.stop_tokens.begin(), sp.stop_tokens.end());
      s->set_top_logprobs(spec->top_logprobs);
      if (ctx->deadline() != std::chrono::system_clock::time_point::max()) {
        const auto left = std::chrono::duration_cast<std::chrono::microseconds>(
            ctx->deadline() - std::chrono::system_clock::now());
        s->set_deadline_us(std::max<int64_t>(1, left.count()));
      }
      if (!rep->Send(m)) {
        open.ReplicaDone();
        return {grpc::StatusCode::UNAVAILABLE, absl::StrCat(rep->name, ": its stream closed")};
      }
    }
    {
      v1::GenerateEvent e;
      v1::Accepted* a = e.mutable_accepted();
      a->set_request_id(p->client_id);
      a->set_prompt_tokens(static_cast<int32_t>(spec->prompt.size()));
      a->set_replica(rep->name);
      if (!writer->Write(e)) return {grpc::StatusCode::CANCELLED, "the client went away"};
    }

    tokenizer::IncrementalDecoder decoder(st_.tok);
    size_t sent = 0;
    int32_t completion = 0, last_id = -1;
    double queue_s = 0;
    std::optional<Clock::time_point> first_at;
    Clock::time_point last_at = accepted_at;
    auto usage = [&](v1::Finished* f) {
      v1::Usage* u = f->mutable_usage();
      u->set_prompt_tokens(static_cast<int32_t>(spec->prompt.size()));
      u->set_completion_tokens(completion);
      u->set_queue_time_s(queue_s);
      if (first_at) {
        u->set_time_to_first_token_s(Seconds(*first_at - accepted_at));
        if (completion > 1) u->set_time_per_output_token_s(Seconds(last_at - *first_at) / (completion - 1));
      }
    };
    auto finish_with_error = [&](const absl::Status& s) {
      v1::GenerateEvent e;
      v1::Finished* f = e.mutable_finished();
      f->set_reason("error");
      usage(f);
      f->mutable_error()->set_code(static_cast<int>(s.code()));
      f->mutable_error()->set_message(std::string(s.message()));
      f->mutable_error()->set_retryable(Retryable(static_cast<int>(s.code())));
      writer->Write(e);
      return ToGrpc(s);
    };
    for (;;) {
      std::deque<v1::Event> events;
      bool aborted = false;
      std::optional<absl::Status> lost;
      {
        std::unique_lock<std::mutex> l(p->mu);
        p->cv.wait_for(l, kPollInterval,
                       [&] { return !p->events.empty() || p->aborted || p->lost; });
        events.swap(p->events);
        aborted = p->aborted;
        lost = p->lost;
      }
      for (const v1::Event& ev : events) {
        v1::GenerateEvent out;
        v1::Tokens* t = out.mutable_tokens();
        const Clock::time_point now = Clock::now();
        if (ev.queue_time_s() > 0) queue_s = ev.queue_time_s();
        for (const v1::TokenOut& tk : ev.tokens()) {
          if (stops->done()) break;
          ++completion;
          last_id = tk.id();
          if (!first_at) first_at = now;
          last_at = now;
          t->add_ids(tk.id());
          if (spec->top_logprobs >= 0) {
            v1::TokenLogprob* lp = t->add_logprobs();
            lp->set_logprob(tk.logprob());
            for (const v1::TopToken& top : tk.top()) {
              v1::TopLogprob* x = lp->add_top();
              x->set_id(top.id());
              x->set_logprob(top.logprob());
            }
          }
          stops->Append(decoder.Push(tk.id()));
        }
        const bool stop_string = stops->done();
        const bool finished = stop_string || !ev.finish().empty();
        if (finished && !stop_string) stops->Append(decoder.Flush());
        const std::string& text = stops->text();
        const size_t end = finished ? text.size() : SendableEnd(text, stops->stable());
        if (end > sent) {
          t->set_text(tokenizer::SanitizeUtf8(absl::string_view(text).substr(sent, end - sent)));
          sent = end;
        }
        if ((t->ids_size() > 0 || !t->text().empty()) && !writer->Write(out)) {
          return {grpc::StatusCode::CANCELLED, "the client went away"};
        }
        if (!finished) continue;
        if (!stop_string) open.ReplicaDone();
        v1::GenerateEvent fin;
        v1::Finished* f = fin.mutable_finished();
        if (stop_string) {
          f->set_reason("stop");
          f->set_stop_string(stops->matched());
        } else if (ev.finish() == "stop") {
          f->set_reason("stop");
          if (last_id >= 0) f->set_stop_token_id(last_id);
        } else if (ev.finish() == "length" || ev.finish() == "cancelled") {
          f->set_reason(ev.finish());
        } else if (ev.finish() == "deadline") {
          return {grpc::StatusCode::DEADLINE_EXCEEDED,
                  "the deadline passed before the request finished"};
        } else {
          const int code = ev.error_code() != 0 ? ev.error_code() : grpc::StatusCode::INTERNAL;
          return finish_with_error(absl::Status(static_cast<absl::StatusCode>(code),
                                                absl::StrCat(rep->name, ": ", ev.error_message())));
        }
        usage(f);
        writer->Write(fin);
        return grpc::Status::OK;
      }
      if (lost) {
        open.ReplicaDone();
        return finish_with_error(*lost);
      }
      if (aborted) {
        v1::GenerateEvent fin;
        fin.mutable_finished()->set_reason("cancelled");
        usage(fin.mutable_finished());
        writer->Write(fin);
        return grpc::Status::OK;
      }
      if (ctx->IsCancelled()) {
        if (std::chrono::system_clock::now() >= ctx->deadline()) {
          open.DeadlinePassed();
          return {grpc::StatusCode::DEADLINE_EXCEEDED, "the deadline passed"};
        }
        return {grpc::StatusCode::CANCELLED, "the client cancelled the request"};
      }
    }
  }

  grpc::Status Abort(grpc::ServerContext*, const v1::AbortRequest* req,
                     v1::AbortResponse* resp) override {
    std::shared_ptr<Pending> p;
    {
      std::lock_guard<std::mutex> l(st_.mu);
      auto it = st_.by_client_id.find(req->request_id());
      if (it != st_.by_client_id.end()) p = it->second;
    }
    if (p) p->Notify([&] { p->aborted = true; });
    resp->set_found(p != nullptr);
    return grpc::Status::OK;
  }

  grpc::Status Tokenize(grpc::ServerContext*, const v1::TokenizeRequest* req,
                        v1::TokenizeResponse* resp) override {
    absl::StatusOr<std::vector<int32_t>> ids = TokenizeInput(*req, st_.model, st_.tok, st_.options.limits);
    if (!ids.ok()) return ToGrpc(ids.status());
    for (int32_t id : *ids) {
      resp->add_ids(id);
      resp->add_pieces(tokenizer::SanitizeUtf8(st_.tok.TokenText(id)));
    }
    return grpc::Status::OK;
  }

  grpc::Status Detokenize(grpc::ServerContext*, const v1::DetokenizeRequest* req,
                          v1::DetokenizeResponse* resp) override {
    if (absl::Status s = CheckModel(req->model(), st_.model); !s.ok()) return ToGrpc(s);
    for (int i = 0; i < req->ids_size(); ++i) {
      if (req->ids(i) < 0 || req->ids(i) >= st_.model.vocab) {
        return {grpc::StatusCode::INVALID_ARGUMENT,
                absl::StrCat("ids[", i, "]: ", req->ids(i), " is outside the vocabulary [0, ",
                             st_.model.vocab, ")")};
      }
    }
    const std::vector<int32_t> ids(req->ids().begin(), req->ids().end());
    resp->set_text(tokenizer::SanitizeUtf8(st_.tok.Decode(ids, /*skip_special=*/false)));
    return grpc::Status::OK;
  }

  grpc::Status ListModels(grpc::ServerContext*, const v1::ListModelsRequest*,
                          v1::ListModelsResponse* resp) override {
    resp->add_models(st_.model.name);
    return grpc::Status::OK;
  }

  grpc::Status ModelInfo(grpc::ServerContext*, const v1::ModelInfoRequest* req,
                         v1::ModelInfoResponse* resp) override {
    if (absl::Status s = CheckModel(req->model(), st_.model); !s.ok()) return ToGrpc(s);
    resp->set_name(st_.model.name);
    resp->set_architecture(st_.model.architecture);
    resp->set_context_length(st_.model.context);
    resp->set_vocab_size(st_.model.vocab);
    resp->set_checksum(st_.model.checksum);
    std::lock_guard<std::mutex> l(st_.mu);
    for (const auto& r : st_.replicas) {
      v1::ReplicaInfo* info = resp->add_replicas();
      info->set_name(r->name);
      info->set_state(st_.shutting_down ? "draining" : "ready");
      info->set_tensor_parallel(r->info.tensor_parallel());
      info->set_expert_parallel(r->info.expert_parallel());
      info->set_kv_blocks(r->info.kv_blocks());
      info->set_block_size(r->info.block_size());
      info->set_max_seqs(r->info.max_seqs());
      info->set_kv_blocks_used(r->load.kv_blocks_used());
      info->set_queued(r->load.queued());
      info->set_running(r->load.running());
      info->set_steps(r->load.steps());
      info->set_expired_in_queue(r->load.expired_in_queue());
    }
    return grpc::Status::OK;
  }

 private:
  State& st_;
};

class Coordinator::ReplicaImpl final : public v1::Replica::Service {
 public:
  explicit ReplicaImpl(State& st) : st_(st) {}

  grpc::Status Connect(grpc::ServerContext*, ReplicaStream* stream) override {
    v1::WorkerMessage m;
    if (!stream->Read(&m)) {
      return {grpc::StatusCode::CANCELLED, "the worker closed the stream before registering"};
    }
    if (!m.has_register_()) {
      return {grpc::StatusCode::FAILED_PRECONDITION, "the worker's first message is not Register"};
    }
    const v1::Register& reg = m.register_();
    if (grpc::Status s = Check(reg); !s.ok()) return s;
    auto conn = std::make_shared<ReplicaConn>();
    conn->info = reg;
    conn->stream = stream;
    {
      std::lock_guard<std::mutex> l(st_.mu);
      if (st_.shutting_down) return {grpc::StatusCode::UNAVAILABLE, "the coordinator is shutting down"};
      conn->name = absl::StrCat("replica-", st_.next_replica++,
                                reg.host().empty() ? "" : "@", reg.host());
      v1::CoordinatorMessage ack;
      ack.mutable_registered()->set_replica(conn->name);
      if (!conn->Send(ack)) return {grpc::StatusCode::CANCELLED, "the worker went away"};
      st_.replicas.push_back(conn);
      st_.UpdateHealth();
    }
    grpc::Status result = grpc::Status::OK;
    while (stream->Read(&m)) {
      if (!m.has_events()) {
        result = {grpc::StatusCode::FAILED_PRECONDITION,
                  "the worker sent something other than Events after registering"};
        break;
      }
      Deliver(*conn, m.events());
    }
    {
      std::lock_guard<std::mutex> l(conn->write_mu);
      conn->open = false;
    }
    std::map<uint64_t, std::shared_ptr<Pending>> orphans;
    {
      std::lock_guard<std::mutex> l(st_.mu);
      st_.replicas.erase(std::find(st_.replicas.begin(), st_.replicas.end(), conn));
      orphans = conn->pending;
      st_.UpdateHealth();
    }
    const absl::Status lost = absl::UnavailableError(
        absl::StrCat(conn->name, " disconnected before the request finished"));
    for (auto& [id, p] : orphans) p->Notify([&] { p->lost = lost; });
    return result;
  }

 private:
  grpc::Status Check(const v1::Register& reg) const {
    const ModelIdentity& m = st_.model;
    if (reg.protocol_version() != kProtocolVersion) {
      return {grpc::StatusCode::FAILED_PRECONDITION,
              absl::StrCat("the worker speaks replica protocol version ", reg.protocol_version(),
                           "; this coordinator speaks version ", kProtocolVersion)};
    }
    if (reg.model_name() != m.name) {
      return {grpc::StatusCode::FAILED_PRECONDITION,
              absl::StrCat("the worker serves model \"", reg.model_name(),
                           "\"; this coordinator serves \"", m.name, "\"")};
    }
    if (reg.model_checksum() != m.checksum || reg.vocab_size() != m.vocab ||
        reg.context_length() != m.context || reg.architecture() != m.architecture) {
      return {grpc::StatusCode::FAILED_PRECONDITION,
              absl::StrCat("the worker's model \"", reg.model_name(), "\" (checksum ",
                           reg.model_checksum(), ", ", reg.architecture(), ", vocabulary ",
                           reg.vocab_size(), ", context ", reg.context_length(),
                           ") is not the coordinator's (checksum ", m.checksum, ", ",
                           m.architecture, ", vocabulary ", m.vocab, ", context ", m.context,
                           "): another model under the same name")};
    }
    if (reg.kv_blocks() < 1 || reg.block_size() < 1 || reg.max_seqs() < 1) {
      return {grpc::StatusCode::FAILED_PRECONDITION,
              absl::StrCat("the worker announces kv_blocks ", reg.kv_blocks(), ", block_size ",
                           reg.block_size(), ", max_seqs ", reg.max_seqs(), " (each must be >= 1)")};
    }
    return grpc::Status::OK;
  }

  void Deliver(ReplicaConn& conn, const v1::Events& events) {
    std::vector<std::pair<std::shared_ptr<Pending>, const v1::Event*>> to;
    {
      std::lock_guard<std::mutex> l(st_.mu);
      conn.load = events.load();
      for (const v1::Event& e : events.events()) {
        auto it = conn.pending.find(e.id());
        if (it == conn.pending.end()) continue;  // cancelled here already
        Pending& p = *it->second;
        const int64_t done = e.finish().empty() ? std::min<int64_t>(p.reserved, e.tokens_size())
                                                : p.reserved;
        p.reserved -= done;
        conn.outstanding -= done;
        to.emplace_back(it->second, &e);
      }
    }
    for (auto& [p, e] : to) p->Notify([&] { p->events.push_back(*e); });
  }

  State& st_;
};

Coordinator::Coordinator(ModelIdentity model, const tokenizer::Tokenizer& tok,
                         CoordinatorOptions options)
    : state_(std::make_unique<State>(std::move(model), tok, std::move(options))),
      inference_(std::make_unique<InferenceImpl>(*state_)),
      replica_(std::make_unique<ReplicaImpl>(*state_)) {}

Coordinator::~Coordinator() = default;

void Coordinator::AddServices(grpc::ServerBuilder& builder) {
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  builder.experimental().SetInterceptorCreators(ParseErrorInterceptors());
  builder.RegisterService(inference_.get());
  builder.RegisterService(replica_.get());
}

void Coordinator::Started(grpc::Server* server) {
  std::lock_guard<std::mutex> l(state_->mu);
  state_->server = server;
  state_->UpdateHealth();
}

void Coordinator::Shutdown() {
  std::vector<std::shared_ptr<Pending>> open;
  {
    std::lock_guard<std::mutex> l(state_->mu);
    state_->shutting_down = true;
    state_->UpdateHealth();
    for (const auto& [id, p] : state_->by_client_id) open.push_back(p);
  }
  const absl::Status s = absl::UnavailableError("the server is shutting down");
  for (auto& p : open) p->Notify([&] { p->lost = s; });
}

}  // namespace tessera::rpc
