// tessera bench -m MODEL: prefill and decode speed (llama-bench's pp/tg), and the
// machine's memory read bandwidth, so decode can be reported against its roofline; with
// --concurrency, the aggregate speed of many requests at once (llama-batched-bench's
// S_PP/S_TG). Every run goes through the engine (scheduler, step plans), as serving does.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernels/cpu/thread_pool.h"
#include "parallel/replica.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/transformer.h"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"

namespace tessera::cli {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::vector<FlagSpec> kFlags = {
    {"--model", "-m", true, "model: .gguf file, Hugging Face folder or alias"},
    {"--n-prompt", "-p", true, "prompt tokens for the prefill test (default 512)"},
    {"--n-gen", "-n", true, "tokens for the decode test (default 128)"},
    {"--repetitions", "-r", true, "runs of each test; the median is reported (default 5)"},
    {"--threads", "-t", true, "comma-separated thread counts (default 1,2)"},
    {"--exact", "", false, "dequantize weights to f32 at load"},
    {"--concurrency", "-c", true,
     "comma-separated sequence counts: aggregate prefill and decode tok/s of that many "
     "concurrent requests (-p prompt and -n generated tokens each) instead of pp/tg"},
    {"--kv-type", "", true, kKvTypeHelp},
    {"--tp", "", true, "tensor-parallel ranks (under mpirun -np TP; default 1)"},
    {"--json", "", false, "print one JSON object"},
    {"--help", "-h", false, "show this help"},
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct BatchTimes {
  double prefill_s = 0, decode_s = 0;  // to every request's first token; after that
  int64_t prefill_tokens = 0, decode_tokens = 0;
  double prefill_comm_s = 0, decode_comm_s = 0;  // of which inside collectives
  double moe_bytes_per_decode_token = 0;
};

// `c` requests of `prompt_len` random tokens, `gen` greedy tokens each (no stop tokens),
// all at once through one engine, as llama-batched-bench runs them: the prefill phase
// lasts until every request has its first token, the decode phase until all are done.
absl::StatusOr<BatchTimes> RunBatch(const Transformer& m, parallel::Communicator* world,
                                    parallel::Communicator* comm, int c, int prompt_len, int gen,
                                    kernels::DType kv_type, std::mt19937& rng) {
  constexpr int64_t kBlock = 16;
  const int64_t per_seq = (prompt_len + gen + kBlock - 1) / kBlock;
  const EngineConfig config{.kv_blocks = c * per_seq, .block_size = kBlock,
                            .max_batch_tokens = std::min<int64_t>(int64_t{c} * prompt_len, 1 << 20),
                            .max_seqs = c,
                            .kv_type = kv_type};
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(m, config, world);
  if (!engine.ok()) return engine.status();
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(m.config().vocab - 1));
  for (int i = 0; i < c; ++i) {
    EngineRequest r;
    r.id = i;
    for (int k = 0; k < prompt_len; ++k) r.prompt.push_back(token(rng));
    r.sampling.max_new_tokens = gen;
    if (absl::Status s = (*engine)->Add(std::move(r)); !s.ok()) return s;
  }
  BatchTimes b;
  std::vector<bool> started(c, false);
  int waiting = c;
  int64_t moe_read = 0;
  double comm0 = comm->stats().seconds;
  auto t0 = Clock::now();
  while (!(*engine)->idle()) {
    absl::StatusOr<std::vector<EngineOutput>> step = (*engine)->Step();
    if (!step.ok()) return step.status();
    if (waiting == 0) {
      moe_read += m.moe_bytes_read_last_forward();
      for (const EngineOutput& o : *step) b.decode_tokens += static_cast<int64_t>(o.tokens.size());
    }
    for (const EngineOutput& o : *step) {
      if (!o.tokens.empty() && !started[o.id]) started[o.id] = true, --waiting;
    }
    if (waiting == 0 && b.prefill_s == 0) {
      b.prefill_s = Since(t0);
      b.prefill_comm_s = comm->stats().seconds - comm0;
      b.prefill_tokens = int64_t{c} * prompt_len;
      t0 = Clock::now();
      comm0 = comm->stats().seconds;
    }
  }
  b.decode_s = Since(t0);
  b.decode_comm_s = comm->stats().seconds - comm0;
  const int64_t steps = gen - 1;
  b.moe_bytes_per_decode_token = steps > 0 ? static_cast<double>(moe_read) / steps : 0;
  if (absl::Status s = (*engine)->Shutdown(); !s.ok()) return s;
  return b;
}

// Read bandwidth in GB/s: sum a 1 GiB buffer (far beyond the caches) on the current pool.
double MemoryReadBandwidth(int repetitions) {
  const int64_t n = (int64_t{1} << 30) / sizeof(float);
  std::vector<float> buf(n, 1.0f);
  std::vector<double> rates;
  for (int r = 0; r < repetitions; ++r) {
    std::vector<float> partial(1024, 0.0f);
    const auto t0 = Clock::now();
    kernels::ParallelFor(1024, 1, [&](int64_t b, int64_t e) {
      for (int64_t chunk = b; chunk < e; ++chunk) {
        const float* p = buf.data() + chunk * (n / 1024);
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        for (int64_t i = 0; i < n / 1024; i += 8) {
          s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
          s4 += p[i + 4], s5 += p[i + 5], s6 += p[i + 6], s7 += p[i + 7];
        }
        partial[chunk] = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
      }
    });
    const double s = Since(t0);
    if (partial[0] != static_cast<float>(n / 1024)) std::fprintf(stderr, "bandwidth check failed\n");
    rates.push_back(n * sizeof(float) / s / 1e9);
  }
  return Median(rates);
}

}  // namespace

int BenchMain(int argc, char** argv) {
  if (argc > 0 && std::string(argv[0]) == "serve") return BenchServeMain(argc - 1, argv + 1);
  auto args = Args::Parse(kFlags, argc, argv, 0);
  if (!args.ok()) return Fail("bench", args.status());
  if (args->Has("--help") || !args->Has("--model")) {
    std::fprintf(args->Has("--help") ? stdout : stderr,
                 "usage: tessera bench -m MODEL [options]\n"
                 "       tessera bench serve --server ADDR [options] (a gRPC load generator)\n%s",
                 FlagHelp(kFlags).c_str());
    return args->Has("--help") ? 0 : 2;
  }
  int n_prompt = 512, n_gen = 128, reps = 5;
  std::vector<int> threads = {1, 2};
  constexpr int kMaxTokens = 1 << 24, kMaxReps = 10000, kMaxThreads = 4096, kMaxConcurrency = 4096;
  for (absl::Status s : {args->GetNumber("--n-prompt", &n_prompt, 1, kMaxTokens),
                         args->GetNumber("--n-gen", &n_gen, 1, kMaxTokens),
                         args->GetNumber("--repetitions", &reps, 1, kMaxReps)}) {
    if (!s.ok()) return Fail("bench", s);
  }
  std::vector<int> concurrency;
  if (auto v = args->Get("--concurrency")) {
    for (absl::string_view part : absl::StrSplit(*v, ',')) {
      auto c = ParseNumber("--concurrency", std::string(part), 1, kMaxConcurrency);
      if (!c.ok()) return Fail("bench", c.status());
      concurrency.push_back(*c);
    }
  }
  if (auto v = args->Get("--threads")) {
    threads.clear();
    for (absl::string_view part : absl::StrSplit(*v, ',')) {
      auto t = ParseNumber("--threads", std::string(part), 1, kMaxThreads);
      if (!t.ok()) return Fail("bench", t.status());
      threads.push_back(*t);
    }
  }
  int tp = 1;
  if (absl::Status s = args->GetNumber("--tp", &tp, 1, kMaxRanks); !s.ok()) return Fail("bench", s);
  absl::StatusOr<kernels::DType> kv_type = KvTypeArg(*args);
  if (!kv_type.ok()) return Fail("bench", kv_type.status());
  // Collectives may wait a minute: ranks of an oversubscribed machine take turns.
  absl::StatusOr<LoadedReplica> loaded = LoadReplica(*args, tp, 1, 60, &argc, &argv);
  if (!loaded.ok()) return Fail("bench", loaded.status());
  const std::unique_ptr<ModelSource>& source = loaded->source;
  const std::unique_ptr<parallel::Replica>& replica = loaded->replica;
  parallel::Communicator* comm = replica->tp();
  const Transformer& m = *loaded->model;

  if (n_prompt + n_gen > m.config().context) {
    return Fail("bench", absl::InvalidArgumentError("--n-prompt + --n-gen exceed the context"));
  }
  const int64_t dense_bytes = m.decode_weight_bytes();
  const bool moe = m.config().n_experts > 0;
  parallel::Communicator* world = replica->world_comm();
  const bool leader = replica->rank() == 0;

  double moe_bytes_per_token = 0;  // measured: what the MoE layers read per decode step
  std::mt19937 rng(1234);
  // One batch through the engine on the leader; the workers execute its plans.
  auto run = [&](int c, int prompt_len, int gen) -> absl::StatusOr<BatchTimes> {
    if (!leader) {
      if (absl::Status s = RunWorker(m, *world); !s.ok()) return s;
      return BatchTimes{};
    }
    return RunBatch(m, world, comm, c, prompt_len, gen, *kv_type, rng);
  };
  json results = json::array();
  for (int t : threads) {
    kernels::SetNumThreads(t);
    if (!concurrency.empty()) {
      for (int c : concurrency) {
        std::vector<double> pp, tg;
        for (int r = 0; r <= reps; ++r) {  // run 0 warms up
          absl::StatusOr<BatchTimes> b = run(c, n_prompt, n_gen);
          if (!b.ok()) return Fail("bench", b.status());
          if (r > 0 && leader) {
            pp.push_back(b->prefill_tokens / b->prefill_s);
            tg.push_back(b->decode_tokens / b->decode_s);
          }
        }
        if (leader) {
          results.push_back({{"threads", t},
                             {"concurrency", c},
                             {"aggregate_prefill_tokens_per_s", Median(pp)},
                             {"aggregate_decode_tokens_per_s", Median(tg)}});
        }
      }
      const double bw = MemoryReadBandwidth(3);
      for (json& r : results) {
        if (r["threads"] == t) r["memory_read_gb_per_s"] = bw;
      }
      continue;
    }
    std::vector<double> pp, tg, pp_comm, tg_comm;
    for (int r = 0; r <= reps; ++r) {  // run 0 warms up
      // pp: the prompt in one step; tg: n_gen decode steps from an empty context.
      absl::StatusOr<BatchTimes> p = run(1, n_prompt, 1);
      if (!p.ok()) return Fail("bench", p.status());
      absl::StatusOr<BatchTimes> g = run(1, 1, n_gen + 1);
      if (!g.ok()) return Fail("bench", g.status());
      moe_bytes_per_token = g->moe_bytes_per_decode_token;
      if (r > 0 && leader) {
        pp.push_back(n_prompt / p->prefill_s);
        tg.push_back(n_gen / g->decode_s);
        pp_comm.push_back(p->prefill_comm_s / p->prefill_s);
        tg_comm.push_back(g->decode_comm_s / g->decode_s);
      }
    }
    const double bw = MemoryReadBandwidth(3);
    if (!leader) continue;
    const double tg_med = Median(tg);
    const double decode_bytes = dense_bytes + moe_bytes_per_token;
    results.push_back({{"threads", t},
                       {"pp_tokens_per_s", Median(pp)},
                       {"tg_tokens_per_s", tg_med},
                       {"memory_read_gb_per_s", bw},
                       {"decode_weight_gb_per_s", tg_med * decode_bytes / 1e9},
                       {"decode_fraction_of_bandwidth", tg_med * decode_bytes / 1e9 / bw},
                       {"pp_collective_time_share", Median(pp_comm)},
                       {"tg_collective_time_share", Median(tg_comm)}});
  }
  if (replica->rank() != 0) return 0;  // rank 0 reports
  json out = {{"model", source->path()},
              {"tp", tp},
              {"n_prompt", n_prompt},
              {"n_gen", n_gen},
              {"repetitions", reps},
              {"decode_bytes_per_token", dense_bytes + moe_bytes_per_token},
              {"kv_type", absl::AsciiStrToLower(kernels::Name(*kv_type))},
              {"kv_bytes_per_token", KvBytesPerToken(m, *kv_type)},
              {"results", results}};
  if (moe && concurrency.empty()) {
    const ModelConfig& c = m.config();
    out["moe"] = {{"experts", c.n_experts},
                  {"experts_per_token", c.n_experts_used},
                  {"moe_weight_bytes", m.moe_weight_bytes()},
                  {"moe_bytes_read_per_decode_token", moe_bytes_per_token},
                  {"active_fraction_read", moe_bytes_per_token / m.moe_weight_bytes()},
                  {"active_fraction_expected",
                   static_cast<double>(c.n_experts_used) / c.n_experts}};
  }
  if (args->Has("--json")) {
    std::printf("%s\n", DumpJson(out, 2).c_str());
    return 0;
  }
  if (!concurrency.empty()) {
    std::printf("model %s; %d-token prompts, %d generated tokens per sequence\n",
                source->path().c_str(), n_prompt, n_gen);
    std::printf("%3s %7s %11s %20s %20s\n", "tp", "threads", "concurrency", "prefill t/s (all)",
                "decode t/s (all)");
    for (const json& r : results) {
      std::printf("%3d %7d %11d %20.1f %20.1f\n", tp, r["threads"].get<int>(),
                  r["concurrency"].get<int>(), r["aggregate_prefill_tokens_per_s"].get<double>(),
                  r["aggregate_decode_tokens_per_s"].get<double>());
    }
    return 0;
  }
  std::printf("model %s; weights read per decode token: %.1f MiB\n", source->path().c_str(),
              out["decode_bytes_per_token"].get<double>() / 1048576.0);
  if (moe) {
    std::printf("MoE: %.1f of %.1f MiB of MoE weights read per decode token (%.1f%%; top-%lld of "
                "%lld experts = %.1f%% plus router and shared experts)\n",
                moe_bytes_per_token / 1048576.0, m.moe_weight_bytes() / 1048576.0,
                100 * moe_bytes_per_token / m.moe_weight_bytes(),
                static_cast<long long>(m.config().n_experts_used),
                static_cast<long long>(m.config().n_experts),
                100.0 * m.config().n_experts_used / m.config().n_experts);
  }
  std::printf("%3s %7s %12s %12s %14s %12s %10s %10s\n", "tp", "threads",
              absl::StrCat("pp", n_prompt, " t/s").c_str(),
              absl::StrCat("tg", n_gen, " t/s").c_str(), "mem read GB/s", "tg/roofline",
              "pp comm", "tg comm");
  for (const json& r : results) {
    std::printf("%3d %7d %12.1f %12.1f %14.1f %11.0f%% %9.0f%% %9.0f%%\n", tp,
                r["threads"].get<int>(), r["pp_tokens_per_s"].get<double>(),
                r["tg_tokens_per_s"].get<double>(), r["memory_read_gb_per_s"].get<double>(),
                100 * r["decode_fraction_of_bandwidth"].get<double>(),
                100 * r["pp_collective_time_share"].get<double>(),
                100 * r["tg_collective_time_share"].get<double>());
  }
  return 0;
}

}  // namespace tessera::cli
