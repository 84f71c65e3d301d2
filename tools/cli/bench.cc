// tessera bench -m MODEL: prefill and decode speed (llama-bench's pp/tg), and the
// machine's memory read bandwidth, so decode can be reported against its roofline.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernels/cpu/thread_pool.h"
#include "parallel/replica.h"
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
    {"--tp", "", true, "tensor-parallel ranks (under mpirun -np TP; default 1)"},
    {"--json", "", false, "print one JSON object"},
    {"--help", "-h", false, "show this help"},
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

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
  auto args = Args::Parse(kFlags, argc, argv, 0);
  if (!args.ok()) return Fail("bench", args.status());
  if (args->Has("--help") || !args->Has("--model")) {
    std::fprintf(args->Has("--help") ? stdout : stderr, "usage: tessera bench -m MODEL [options]\n%s",
                 FlagHelp(kFlags).c_str());
    return args->Has("--help") ? 0 : 2;
  }
  int n_prompt = 512, n_gen = 128, reps = 5;
  std::vector<int> threads = {1, 2};
  constexpr int kMaxTokens = 1 << 24, kMaxReps = 10000, kMaxThreads = 4096, kMaxRanks = 1 << 16;
  for (absl::Status s : {args->GetNumber("--n-prompt", &n_prompt, 1, kMaxTokens),
                         args->GetNumber("--n-gen", &n_gen, 1, kMaxTokens),
                         args->GetNumber("--repetitions", &reps, 1, kMaxReps)}) {
    if (!s.ok()) return Fail("bench", s);
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
  auto source = ModelSource::Open(*args->Get("--model"));
  if (!source.ok()) return Fail("bench", source.status());
  if ((*source)->config() == nullptr) {
    return Fail("bench", absl::InvalidArgumentError("the model holds no weights"));
  }
  auto replica = parallel::Replica::Join(&argc, &argv, tp, 1, ShapeOf(*(*source)->config()),
                                         absl::Seconds(60));
  if (!replica.ok()) return Fail("bench", replica.status());
  parallel::Communicator* comm = (*replica)->tp();
  auto model = Transformer::Load(**source, comm, LoadOptions{.exact = args->Has("--exact")});
  if (!model.ok()) return Fail("bench", model.status());
  const Transformer& m = **model;
  if (n_prompt + n_gen > m.config().context) {
    return Fail("bench", absl::InvalidArgumentError("--n-prompt + --n-gen exceed the context"));
  }
  const int64_t dense_bytes = m.decode_weight_bytes();
  const bool moe = m.config().n_experts > 0;

  double moe_bytes_per_token = 0;  // measured: what the MoE layers read per decode step
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(m.config().vocab - 1));
  json results = json::array();
  for (int t : threads) {
    kernels::SetNumThreads(t);
    std::vector<double> pp, tg, pp_comm, tg_comm;
    for (int r = 0; r <= reps; ++r) {  // run 0 warms up
      std::vector<int32_t> prompt(n_prompt);
      for (int32_t& id : prompt) id = token(rng);
      auto cache = KvCache::Create(m.CacheShape(n_prompt + n_gen));
      if (!cache.ok()) return Fail("bench", cache.status());
      std::vector<float> logits;
      const SeqChunk chunk{0, prompt, false};
      double comm0 = comm->stats().seconds;
      auto t0 = Clock::now();
      if (absl::Status s = m.Forward({&chunk, 1}, **cache, logits); !s.ok()) return Fail("bench", s);
      const double prefill = Since(t0);
      const double prefill_comm = comm->stats().seconds - comm0;
      comm0 = comm->stats().seconds;
      auto gen_cache = KvCache::Create(m.CacheShape(n_gen));
      if (!gen_cache.ok()) return Fail("bench", gen_cache.status());
      int64_t moe_read = 0;
      t0 = Clock::now();
      for (int i = 0; i < n_gen; ++i) {
        const int32_t id = token(rng);
        const SeqChunk one{0, {&id, 1}, false};
        if (absl::Status s = m.Forward({&one, 1}, **gen_cache, logits); !s.ok()) return Fail("bench", s);
        moe_read += m.moe_bytes_read_last_forward();
      }
      const double decode = Since(t0);
      const double decode_comm = comm->stats().seconds - comm0;
      moe_bytes_per_token = static_cast<double>(moe_read) / n_gen;
      if (r > 0) {
        pp.push_back(n_prompt / prefill);
        tg.push_back(n_gen / decode);
        pp_comm.push_back(prefill_comm / prefill);
        tg_comm.push_back(decode_comm / decode);
      }
    }
    const double bw = MemoryReadBandwidth(3);
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
  if ((*replica)->rank() != 0) return 0;  // rank 0 reports
  json out = {{"model", (*source)->path()},
              {"tp", tp},
              {"n_prompt", n_prompt},
              {"n_gen", n_gen},
              {"repetitions", reps},
              {"decode_bytes_per_token", dense_bytes + moe_bytes_per_token},
              {"results", results}};
  if (moe) {
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
  std::printf("model %s; weights read per decode token: %.1f MiB\n", (*source)->path().c_str(),
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
