// tessera client CMD --server ADDR: a command-line client of the tessera.v1 API.
//
//   generate -p TEXT | --ids 1,2,3   streams the generated text to stdout as it arrives
//   chat -p MESSAGE [--system TEXT]  the same, the prompt rendered with the chat template
//   tokenize TEXT                    {"ids": [...], "pieces": [...]}
//   models                           ListModels and each model's ModelInfo, as JSON
//   health [--service NAME]          grpc.health.v1 Check: prints the status; exit 0 if SERVING
//
// Errors are printed as "tessera client: CODE: message" (exit 1).
#include <algorithm>
#include <chrono>
#include <limits>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tessera/v1/inference.grpc.pb.h"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"

namespace tessera::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kUsage =
    "usage: tessera client generate|chat|tokenize|models|health --server ADDR [options]\n";

const std::vector<FlagSpec> kFlags = {
    {"--server", "-s", true, "the server's address (host:port; default 127.0.0.1:50051)"},
    {"--model", "-m", true, "model name (default: the only one served)"},
    {"--prompt", "-p", true, "generate: the prompt text; chat: the user's message"},
    {"--ids", "", true, "generate: the prompt as token ids, comma-separated"},
    {"--system", "", true, "chat: a system message first"},
    {"--n-predict", "-n", true, "max_tokens (default: the server's, 128)"},
    {"--temperature", "", true, "0 = greedy (default 0)"},
    {"--top-k", "", true, "keep the k most likely tokens (0 = off)"},
    {"--top-p", "", true, "nucleus sampling (1 = off)"},
    {"--min-p", "", true, "drop tokens below this times the top probability (0 = off)"},
    {"--repetition-penalty", "", true, "penalise repeated tokens (1 = off)"},
    {"--seed", "", true, "random seed (default 0)"},
    {"--stop", "", true, "a stop string"},
    {"--logprobs", "", true, "report each token's logprob and the top N alternatives"},
    {"--ignore-eos", "", false, "do not stop at end-of-sequence tokens"},
    {"--request-id", "", true, "the request's id (for Abort)"},
    {"--session", "", true, "session key: requests with one key go to one replica"},
    {"--deadline", "", true, "seconds the request may take (a gRPC deadline)"},
    {"--service", "", true, "health: the service to check (default \"\": the server)"},
    {"--json", "", false, "generate/chat: print one JSON result at the end instead of text"},
    {"--help", "-h", false, "show this help"},
};

int Failed(const grpc::Status& s) {
  std::fprintf(stderr, "tessera client: %d: %s\n", static_cast<int>(s.error_code()),
               s.error_message().c_str());
  return 1;
}

template <typename T>
absl::Status Optional(const Args& args, const char* flag, T lo, T hi, auto set) {
  if (!args.Has(flag)) return absl::OkStatus();
  T x{};
  if (absl::Status s = args.GetNumber(flag, &x, lo, hi); !s.ok()) return s;
  set(x);
  return absl::OkStatus();
}

absl::StatusOr<v1::GenerateRequest> BuildGenerate(const Args& args, bool chat) {
  v1::GenerateRequest r;
  r.set_model(args.Get("--model").value_or(""));
  if (chat) {
    if (!args.Has("--prompt")) return absl::InvalidArgumentError("chat needs --prompt");
    if (args.Has("--system")) {
      v1::ChatMessage* m = r.mutable_chat()->add_messages();
      m->set_role("system");
      m->set_content(*args.Get("--system"));
    }
    v1::ChatMessage* m = r.mutable_chat()->add_messages();
    m->set_role("user");
    m->set_content(*args.Get("--prompt"));
  } else if (args.Has("--ids")) {
    for (absl::string_view x : absl::StrSplit(*args.Get("--ids"), ',')) {
      int32_t id;
      if (!absl::SimpleAtoi(x, &id)) {
        return absl::InvalidArgumentError(absl::StrCat("--ids: '", x, "' is not a token id"));
      }
      r.mutable_token_ids()->add_ids(id);
    }
  } else if (args.Has("--prompt")) {
    r.set_text(*args.Get("--prompt"));
  } else {
    return absl::InvalidArgumentError("generate needs --prompt or --ids");
  }
  // Ranges are the server's to check: the client passes what it is given.
  constexpr float kF = std::numeric_limits<float>::max();
  constexpr int32_t kI = std::numeric_limits<int32_t>::max();
  v1::SamplingParams* sp = r.mutable_sampling();
  for (absl::Status s : {
           Optional<int32_t>(args, "--n-predict", -kI, kI, [&](int32_t x) { r.set_max_tokens(x); }),
           Optional<float>(args, "--temperature", -kF, kF, [&](float x) { sp->set_temperature(x); }),
           Optional<int32_t>(args, "--top-k", -kI, kI, [&](int32_t x) { sp->set_top_k(x); }),
           Optional<float>(args, "--top-p", -kF, kF, [&](float x) { sp->set_top_p(x); }),
           Optional<float>(args, "--min-p", -kF, kF, [&](float x) { sp->set_min_p(x); }),
           Optional<float>(args, "--repetition-penalty", -kF, kF,
                           [&](float x) { sp->set_repetition_penalty(x); }),
           Optional<uint64_t>(args, "--seed", 0, std::numeric_limits<uint64_t>::max(),
                              [&](uint64_t x) { sp->set_seed(x); }),
           Optional<int32_t>(args, "--logprobs", -kI, kI, [&](int32_t x) { r.set_logprobs(x); }),
       }) {
    if (!s.ok()) return s;
  }
  if (args.Has("--stop")) r.add_stop(*args.Get("--stop"));
  r.set_ignore_eos(args.Has("--ignore-eos"));
  r.set_request_id(args.Get("--request-id").value_or(""));
  r.set_session_key(args.Get("--session").value_or(""));
  return r;
}

int Generate(const Args& args, v1::Inference::Stub& stub, bool chat) {
  absl::StatusOr<v1::GenerateRequest> req = BuildGenerate(args, chat);
  if (!req.ok()) return Fail("client", req.status());
  grpc::ClientContext ctx;
  if (args.Has("--deadline")) {
    double s = 0;
    if (absl::Status st = args.GetNumber("--deadline", &s, 1e-3, 86400.0); !st.ok()) {
      return Fail("client", st);
    }
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::microseconds(static_cast<int64_t>(s * 1e6)));
  }
  const bool as_json = args.Has("--json");
  auto reader = stub.Generate(&ctx, *req);
  v1::GenerateEvent e;
  json out = {{"ids", json::array()}, {"text", ""}, {"logprobs", json::array()}};
  std::string text;
  while (reader->Read(&e)) {
    if (e.has_accepted()) {
      out["request_id"] = e.accepted().request_id();
      out["replica"] = e.accepted().replica();
      out["prompt_tokens"] = e.accepted().prompt_tokens();
    } else if (e.has_tokens()) {
      for (int32_t id : e.tokens().ids()) out["ids"].push_back(id);
      for (const v1::TokenLogprob& lp : e.tokens().logprobs()) {
        json top = json::array();
        for (const v1::TopLogprob& t : lp.top()) top.push_back({t.id(), t.logprob()});
        out["logprobs"].push_back({{"logprob", lp.logprob()}, {"top", top}});
      }
      text += e.tokens().text();
      if (!as_json) {
        std::fwrite(e.tokens().text().data(), 1, e.tokens().text().size(), stdout);
        std::fflush(stdout);
      }
    } else if (e.has_finished()) {
      const v1::Finished& f = e.finished();
      out["finish_reason"] = f.reason();
      if (f.has_stop_string()) out["stop"] = f.stop_string();
      if (f.has_stop_token_id()) out["stop"] = f.stop_token_id();
      const v1::Usage& u = f.usage();
      out["usage"] = {{"prompt_tokens", u.prompt_tokens()},
                      {"completion_tokens", u.completion_tokens()},
                      {"cached_tokens", u.cached_tokens()},
                      {"queue_time_s", u.queue_time_s()},
                      {"time_to_first_token_s", u.time_to_first_token_s()},
                      {"time_per_output_token_s", u.time_per_output_token_s()}};
      if (f.has_error()) {
        out["error"] = {{"code", f.error().code()}, {"message", f.error().message()},
                        {"retryable", f.error().retryable()}};
      }
    }
  }
  const grpc::Status s = reader->Finish();
  out["text"] = text;
  if (as_json) {
    if (!s.ok()) out["status"] = {{"code", s.error_code()}, {"message", s.error_message()}};
    std::printf("%s\n", DumpJson(out).c_str());
  } else {
    std::printf("\n");
    if (out.contains("usage")) {
      std::fprintf(stderr, "[%s; %d prompt + %d tokens; time to first token %.3f s]\n",
                   out.value("finish_reason", "").c_str(),
                   out["usage"]["prompt_tokens"].get<int>(),
                   out["usage"]["completion_tokens"].get<int>(),
                   out["usage"]["time_to_first_token_s"].get<double>());
    }
  }
  return s.ok() ? 0 : Failed(s);
}

int Tokenize(const Args& args, v1::Inference::Stub& stub) {
  if (args.positional().size() != 2) return Fail("client", absl::InvalidArgumentError("tokenize takes one TEXT"));
  v1::TokenizeRequest req;
  req.set_model(args.Get("--model").value_or(""));
  req.set_text(args.positional()[1]);
  v1::TokenizeResponse resp;
  grpc::ClientContext ctx;
  if (grpc::Status s = stub.Tokenize(&ctx, req, &resp); !s.ok()) return Failed(s);
  json j = {{"ids", json(std::vector<int32_t>(resp.ids().begin(), resp.ids().end()))},
            {"pieces", json(std::vector<std::string>(resp.pieces().begin(), resp.pieces().end()))}};
  std::printf("%s\n", DumpJson(j).c_str());
  return 0;
}

int Models(v1::Inference::Stub& stub) {
  v1::ListModelsResponse list;
  {
    grpc::ClientContext ctx;
    const v1::ListModelsRequest req;
    if (grpc::Status s = stub.ListModels(&ctx, req, &list); !s.ok()) return Failed(s);
  }
  json out = json::array();
  for (const std::string& name : list.models()) {
    v1::ModelInfoRequest req;
    req.set_model(name);
    v1::ModelInfoResponse info;
    grpc::ClientContext ctx;
    if (grpc::Status s = stub.ModelInfo(&ctx, req, &info); !s.ok()) return Failed(s);
    json replicas = json::array();
    for (const v1::ReplicaInfo& r : info.replicas()) {
      replicas.push_back({{"name", r.name()}, {"state", r.state()},
                          {"tensor_parallel", r.tensor_parallel()},
                          {"expert_parallel", r.expert_parallel()},
                          {"kv_blocks", r.kv_blocks()}, {"kv_blocks_used", r.kv_blocks_used()},
                          {"block_size", r.block_size()}, {"max_seqs", r.max_seqs()},
                          {"queued", r.queued()}, {"running", r.running()}, {"steps", r.steps()},
                          {"expired_in_queue", r.expired_in_queue()}});
    }
    out.push_back({{"name", info.name()}, {"architecture", info.architecture()},
                   {"context_length", info.context_length()}, {"vocab_size", info.vocab_size()},
                   {"checksum", info.checksum()}, {"replicas", replicas}});
  }
  std::printf("%s\n", DumpJson(out, 2).c_str());
  return 0;
}

int Health(const Args& args, const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(args.Get("--service").value_or(""));
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (grpc::Status s = stub->Check(&ctx, req, &resp); !s.ok()) return Failed(s);
  std::printf("%s\n", grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()).c_str());
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace

int ClientMain(int argc, char** argv) {
  auto args = Args::Parse(kFlags, argc, argv, 0);
  if (!args.ok()) return Fail("client", args.status());
  const std::string cmd = args->positional().empty() ? "" : args->positional()[0];
  static const std::vector<std::string> kCommands = {"generate", "chat", "tokenize", "models", "health"};
  if (args->Has("--help") || std::find(kCommands.begin(), kCommands.end(), cmd) == kCommands.end()) {
    std::fprintf(args->Has("--help") ? stdout : stderr, "%s%s", kUsage, FlagHelp(kFlags).c_str());
    return args->Has("--help") ? 0 : 2;
  }
  if (cmd != "tokenize" && args->positional().size() != 1) {
    return Fail("client", absl::InvalidArgumentError(
                              absl::StrCat("unexpected argument '", args->positional()[1], "'")));
  }
  grpc::ChannelArguments ch;
  ch.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(args->Get("--server").value_or("127.0.0.1:50051"),
                                           grpc::InsecureChannelCredentials(), ch);
  auto stub = v1::Inference::NewStub(channel);
  if (cmd == "generate" || cmd == "chat") return Generate(*args, *stub, cmd == "chat");
  if (cmd == "tokenize") return Tokenize(*args, *stub);
  if (cmd == "models") return Models(*stub);
  return Health(*args, channel);
}

}  // namespace tessera::cli
