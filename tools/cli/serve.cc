// tessera serve / coordinator / worker: gRPC serving (docs/DESIGN.md §1, §5).
//
//   tessera coordinator -m MODEL --listen ADDR     the public API; loads the tokenizer only
//   mpirun -np W tessera worker -m MODEL --coordinator ADDR [--tp/--ep]
//                                                  a replica: rank 0 dials the coordinator
//   [mpirun -np W] tessera serve -m MODEL [--listen ADDR]
//                                                  both in one process (rank 0 hosts the
//                                                  coordinator; its replica dials it in-process)
//
// SIGINT or SIGTERM stops a command cleanly: open requests end with UNAVAILABLE, the
// replica's workers get the stop plan.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>
#include <limits>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "rpc/coordinator.h"
#include "rpc/worker.h"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"

namespace tessera::cli {
namespace {

constexpr const char* kDefaultListen = "127.0.0.1:50051";
constexpr int64_t kDefaultMaxSeqs = 32;
constexpr int kMaxMessageBytes = 4 << 20;
constexpr std::chrono::seconds kConnectTimeout(30);

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

void CatchStopSignals() {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::vector<FlagSpec> Flags(bool coordinator, bool worker) {
  std::vector<FlagSpec> f = {
      {"--model", "-m", true, "model: .gguf file, Hugging Face folder or alias"},
      {"--model-name", "", true, "the name clients ask for (default: the file name, no .gguf)"},
      {"--help", "-h", false, "show this help"},
  };
  if (coordinator) {
    f.push_back({"--listen", "", true,
                 absl::StrCat("address to serve on (default ", kDefaultListen,
                              "; port 0 picks a free one)")});
    f.push_back({"--max-inflight", "", true,
                 "requests open at once; more get RESOURCE_EXHAUSTED (1 to 1000000; default 256)"});
    f.push_back({"--max-tokens", "", true, "max_tokens of a request that sets none (default 128)"});
  }
  if (worker) {
    f.push_back({"--exact", "", false, "dequantize weights to f32 at load (reference path)"});
    f.push_back({"--tp", "", true, "tensor-parallel ranks (under mpirun; default 1)"});
    f.push_back({"--ep", "", true, "expert-parallel ranks (under mpirun; default 1)"});
    f.push_back({"--timeout", "", true,
                 "seconds a collective may wait for a peer (0.001 to 86400; default 30)"});
    for (FlagSpec& e : EngineFlagSpecs(kDefaultMaxSeqs)) f.push_back(std::move(e));
  }
  if (worker && !coordinator) {
    f.push_back({"--coordinator", "", true, "the coordinator's address (host:port)"});
  }
  return f;
}

// A running coordinator: its gRPC server and the address it listens on.
struct Listening {
  std::unique_ptr<rpc::Coordinator> coordinator;
  std::unique_ptr<grpc::Server> server;
  std::string address;

  void Stop() {
    coordinator->Shutdown();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
};

absl::StatusOr<Listening> Listen(const Args& args, rpc::ModelIdentity model,
                                 const tokenizer::Tokenizer& tok) {
  rpc::CoordinatorOptions opts;
  for (absl::Status s : {args.GetNumber("--max-inflight", &opts.max_inflight, int64_t{1},
                                        int64_t{1000000}),
                         args.GetNumber("--max-tokens", &opts.limits.default_max_tokens, 1,
                                        std::numeric_limits<int32_t>::max())}) {
    if (!s.ok()) return s;
  }
  const std::string listen = args.Get("--listen").value_or(kDefaultListen);
  Listening l;
  l.coordinator = std::make_unique<rpc::Coordinator>(std::move(model), tok, opts);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  l.coordinator->AddServices(builder);
  l.server = builder.BuildAndStart();
  if (!l.server || port == 0) {
    return absl::UnavailableError(absl::StrCat("--listen ", listen, ": cannot listen there"));
  }
  l.coordinator->Started(l.server.get());
  const size_t colon = listen.rfind(':');
  l.address = absl::StrCat(listen.substr(0, colon), ":", port);
  return l;
}

absl::StatusOr<rpc::ModelIdentity> Identify(const Args& args, const ModelSource& source) {
  return rpc::IdentifyModel(source, args.Get("--model-name").value_or(""));
}

void PrintUsage(const Args& args, const char* usage, const std::vector<FlagSpec>& flags) {
  const bool help = args.Has("--help");
  std::fprintf(help ? stdout : stderr, "usage: %s\n%s", usage, FlagHelp(flags).c_str());
}

// Rank 0 of a replica: the engine, served through `channel` (a coordinator's address, or
// the in-process coordinator's channel). Returns the exit code.
int RunReplica(const char* cmd, const LoadedReplica& loaded,
               const EngineConfig& config, const rpc::ModelIdentity& model, int tp, int ep,
               const std::function<std::shared_ptr<grpc::Channel>()>& channel,
               Listening* listening, std::function<void()> on_registered = {}) {
  parallel::Communicator* world = loaded.replica->world_comm();
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(*loaded.model, config, world);
  if (!engine.ok()) {
    if (listening) listening->Stop();
    return Fail(cmd, engine.status());
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  rpc::WorkerOptions opts{.model = model, .tensor_parallel = tp, .expert_parallel = ep,
                          .host = host, .on_registered = std::move(on_registered)};
  absl::Status s = rpc::ServeReplica(**engine, channel(), opts, g_stop);
  if (listening) listening->Stop();
  absl::Status down = (*engine)->Shutdown();
  if (s.ok()) s = down;
  return s.ok() ? 0 : Fail(cmd, s);
}

// serve (embedded == true) and worker share everything up to where the channel comes from.
int ReplicaMain(const char* cmd, bool embedded, int argc, char** argv) {
  const std::vector<FlagSpec> flags = Flags(/*coordinator=*/embedded, /*worker=*/true);
  const char* usage = embedded ? "tessera serve -m MODEL [--listen ADDR] [options]"
                               : "tessera worker -m MODEL --coordinator ADDR [options]";
  auto args = Args::Parse(flags, argc, argv, 0);
  if (!args.ok()) return Fail(cmd, args.status());
  if (args->Has("--help") || !args->Has("--model") || !args->positional().empty() ||
      (!embedded && !args->Has("--coordinator"))) {
    PrintUsage(*args, usage, flags);
    return args->Has("--help") ? 0 : 2;
  }
  int tp = 1, ep = 1;
  double timeout_s = 30;
  for (absl::Status s : {args->GetNumber("--tp", &tp, 1, kMaxRanks),
                         args->GetNumber("--ep", &ep, 1, kMaxRanks),
                         args->GetNumber("--timeout", &timeout_s, kMinTimeoutS, kMaxTimeoutS)}) {
    if (!s.ok()) return Fail(cmd, s);
  }
  absl::StatusOr<EngineFlags> engine_flags = ParseEngineFlags(*args, kDefaultMaxSeqs);
  if (!engine_flags.ok()) return Fail(cmd, engine_flags.status());
  CatchStopSignals();
  absl::StatusOr<LoadedReplica> loaded = LoadReplica(*args, tp, ep, timeout_s, &argc, &argv);
  if (!loaded.ok()) return Fail(cmd, loaded.status());
  parallel::Communicator* world = loaded->replica->world_comm();
  if (loaded->replica->rank() != 0) {
    absl::Status s = RunWorker(*loaded->model, *world);
    return s.ok() ? 0 : Fail(cmd, s);
  }
  auto fail = [&](absl::Status s) {
    ReleaseWorkers(*world).IgnoreError();
    return Fail(cmd, s);
  };
  absl::StatusOr<rpc::ModelIdentity> model = Identify(*args, *loaded->source);
  if (!model.ok()) return fail(model.status());
  absl::StatusOr<EngineConfig> config = EngineConfigFor(*engine_flags, *loaded->model);
  if (!config.ok()) return fail(config.status());
  if (!embedded) {
    const std::string addr = *args->Get("--coordinator");
    std::fprintf(stderr, "tessera worker: model %s, tp %d x ep %d, dialing %s\n",
                 model->name.c_str(), tp, ep, addr.c_str());
    grpc::ChannelArguments ch;
    ch.SetMaxReceiveMessageSize(kMaxMessageBytes);
    auto channel = grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), ch);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + kConnectTimeout)) {
      return fail(absl::UnavailableError(absl::StrCat(
          "--coordinator ", addr, ": cannot connect (waited ", kConnectTimeout.count(), " s)")));
    }
    return RunReplica(cmd, *loaded, *config, *model, tp, ep, [&] { return channel; },
                      nullptr);
  }
  auto tok = LoadModelTokenizer(*loaded->source, *loaded->model);
  if (!tok.ok()) return fail(tok.status());
  NoteChatTemplate("serve", **tok);
  absl::StatusOr<Listening> listening = Listen(*args, *model, **tok);
  if (!listening.ok()) return fail(listening.status());
  // Announced once the engine's replica has registered, so a client that starts on this
  // line never finds the model without a replica.
  auto announce = [&] {
    std::fprintf(stderr,
                 "tessera serve: listening on %s; model %s (%s, context %d), tp %d x ep %d, KV "
                 "%lld blocks of %lld tokens\n",
                 listening->address.c_str(), model->name.c_str(), model->architecture.c_str(),
                 model->context, tp, ep, static_cast<long long>(config->kv_blocks),
                 static_cast<long long>(config->block_size));
    std::fflush(stderr);
  };
  return RunReplica(cmd, *loaded, *config, *model, tp, ep, [&] {
    grpc::ChannelArguments ch;
    ch.SetMaxReceiveMessageSize(kMaxMessageBytes);
    return listening->server->InProcessChannel(ch);
  }, &*listening, announce);
}

}  // namespace

int ServeMain(int argc, char** argv) { return ReplicaMain("serve", /*embedded=*/true, argc, argv); }

int WorkerMain(int argc, char** argv) {
  return ReplicaMain("worker", /*embedded=*/false, argc, argv);
}

int CoordinatorMain(int argc, char** argv) {
  const std::vector<FlagSpec> flags = Flags(/*coordinator=*/true, /*worker=*/false);
  const char* usage = "tessera coordinator -m MODEL [--listen ADDR] [options]";
  auto args = Args::Parse(flags, argc, argv, 0);
  if (!args.ok()) return Fail("coordinator", args.status());
  if (args->Has("--help") || !args->Has("--model") || !args->positional().empty()) {
    PrintUsage(*args, usage, flags);
    return args->Has("--help") ? 0 : 2;
  }
  CatchStopSignals();
  auto source = ModelSource::Open(*args->Get("--model"));
  if (!source.ok()) return Fail("coordinator", source.status());
  absl::StatusOr<rpc::ModelIdentity> model = Identify(*args, **source);
  if (!model.ok()) return Fail("coordinator", model.status());
  auto tok = LoadTokenizer(**source);
  if (!tok.ok()) return Fail("coordinator", tok.status());
  if ((*tok)->vocab_size() > model->vocab) {
    return Fail("coordinator", absl::FailedPreconditionError(absl::StrCat(
                                   "the tokenizer has ", (*tok)->vocab_size(),
                                   " tokens, more than the model's vocabulary of ", model->vocab)));
  }
  absl::StatusOr<Listening> listening = Listen(*args, *model, **tok);
  if (!listening.ok()) return Fail("coordinator", listening.status());
  std::fprintf(stderr,
               "tessera coordinator: listening on %s; model %s (%s, context %d, checksum %s); "
               "waiting for workers\n",
               listening->address.c_str(), model->name.c_str(), model->architecture.c_str(),
               model->context, model->checksum.c_str());
  std::fflush(stderr);
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  listening->Stop();
  return 0;
}

}  // namespace tessera::cli
