// tessera bench serve --server ADDR: a load generator over gRPC, in the manner of vLLM's
// `bench serve`. Each level runs --requests requests, either at a fixed concurrency (that
// many always in flight) or arriving as a Poisson process at --rate requests/s; prompts are
// synthetic (--input-len random token ids) or read from --prompts (a JSONL file of
// {"prompt": text} lines, or plain text lines), each generating exactly --output-len tokens
// (ignore_eos). Warm-up requests run first and are not counted. Reports, per level: time
// to first token (TTFT), time per output token after the first (TPOT), inter-token
// latency between streamed events (ITL) and end-to-end latency (mean, p50, p90, p99),
// output tok/s, requests/s, and errors by status code.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpcpp/grpcpp.h"
#include "tessera/v1/inference.grpc.pb.h"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"

namespace tessera::cli {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::vector<FlagSpec> kFlags = {
    {"--server", "-s", true, "the server (host:port; default 127.0.0.1:50051)"},
    {"--model", "-m", true, "model name (default: the only one served)"},
    {"--concurrency", "-c", true, "comma-separated levels of requests in flight (default 1,4,16)"},
    {"--rate", "", true, "instead: comma-separated Poisson arrival rates, requests/s"},
    {"--requests", "-n", true, "requests per level (default 4 x the level, at least 8)"},
    {"--input-len", "", true, "synthetic prompt tokens (default 128)"},
    {"--output-len", "", true, "tokens generated per request (default 64)"},
    {"--prompts", "", true, "prompts file: JSONL {\"prompt\": ...} or one text per line"},
    {"--warmup", "", true, "requests run first and not counted (default 2)"},
    {"--seed", "", true, "seed of the synthetic prompts and arrival times (default 0)"},
    {"--json", "", false, "print one JSON object"},
    {"--help", "-h", false, "show this help"},
};

struct Sample {
  bool ok = false;
  int code = 0;
  double ttft = 0, e2e = 0, tpot = 0;
  int64_t tokens = 0;
  std::vector<double> itl;
};

// One streamed request, timed.
Sample RunOne(v1::Inference::Stub& stub, const v1::GenerateRequest& req) {
  Sample s;
  grpc::ClientContext ctx;
  const Clock::time_point start = Clock::now();
  auto reader = stub.Generate(&ctx, req);
  v1::GenerateEvent e;
  std::optional<Clock::time_point> first, last;
  while (reader->Read(&e)) {
    if (!e.has_tokens() || e.tokens().ids_size() == 0) continue;
    const Clock::time_point now = Clock::now();
    if (!first) {
      first = now;
    } else {
      s.itl.push_back(std::chrono::duration<double>(now - *last).count());
    }
    last = now;
    s.tokens += e.tokens().ids_size();
  }
  const grpc::Status st = reader->Finish();
  s.e2e = std::chrono::duration<double>(Clock::now() - start).count();
  s.ok = st.ok();
  s.code = static_cast<int>(st.error_code());
  if (first) {
    s.ttft = std::chrono::duration<double>(*first - start).count();
    if (s.tokens > 1) s.tpot = (s.e2e - s.ttft) / static_cast<double>(s.tokens - 1);
  }
  return s;
}

json Stats(std::vector<double> v) {
  if (v.empty()) return nullptr;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100 * static_cast<double>(v.size())));
    return v[i] * 1e3;
  };
  double sum = 0;
  for (double x : v) sum += x;
  return {{"mean_ms", sum / static_cast<double>(v.size()) * 1e3}, {"p50_ms", pct(50)},
          {"p90_ms", pct(90)}, {"p99_ms", pct(99)}};
}

absl::StatusOr<std::vector<std::string>> ReadPrompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open for reading"));
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line[0] == '{') {
      json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.contains("prompt") || !j["prompt"].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": a JSON line without a \"prompt\" string"));
      }
      out.push_back(j["prompt"].get<std::string>());
    } else {
      out.push_back(line);
    }
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no prompts"));
  return out;
}

absl::StatusOr<std::vector<double>> Levels(const std::string& flag, const std::string& text, double lo,
                                           double hi) {
  std::vector<double> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    absl::StatusOr<double> x = ParseNumber(flag, std::string(part), lo, hi);
    if (!x.ok()) return x.status();
    out.push_back(*x);
  }
  return out;
}

}  // namespace

int BenchServeMain(int argc, char** argv) {
  auto args = Args::Parse(kFlags, argc, argv, 0);
  if (!args.ok()) return Fail("bench serve", args.status());
  if (args->Has("--help") || !args->positional().empty()) {
    std::fprintf(args->Has("--help") ? stdout : stderr,
                 "usage: tessera bench serve --server ADDR [options]\n%s", FlagHelp(kFlags).c_str());
    return args->Has("--help") ? 0 : 2;
  }
  int input_len = 128, output_len = 64, warmup = 2;
  int64_t requests = 0;
  uint64_t seed = 0;
  for (absl::Status s : {args->GetNumber("--input-len", &input_len, 1, 1 << 20),
                         args->GetNumber("--output-len", &output_len, 1, 1 << 20),
                         args->GetNumber("--warmup", &warmup, 0, 1000),
                         args->GetNumber("--requests", &requests, int64_t{1}, int64_t{1} << 20),
                         args->GetNumber("--seed", &seed, uint64_t{0}, ~uint64_t{0})}) {
    if (!s.ok()) return Fail("bench serve", s);
  }
  const bool poisson = args->Has("--rate");
  absl::StatusOr<std::vector<double>> levels =
      poisson ? Levels("--rate", *args->Get("--rate"), 1e-3, 1e6)
              : Levels("--concurrency", args->Get("--concurrency").value_or("1,4,16"), 1, 4096);
  if (!levels.ok()) return Fail("bench serve", levels.status());
  std::vector<std::string> prompts;
  if (args->Has("--prompts")) {
    absl::StatusOr<std::vector<std::string>> p = ReadPrompts(*args->Get("--prompts"));
    if (!p.ok()) return Fail("bench serve", p.status());
    prompts = *std::move(p);
  }
  const std::string server = args->Get("--server").value_or("127.0.0.1:50051");
  auto channel = grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
  auto stub = v1::Inference::NewStub(channel);
  int32_t vocab = 0;
  {
    v1::ModelInfoRequest req;
    req.set_model(args->Get("--model").value_or(""));
    v1::ModelInfoResponse info;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status s = stub->ModelInfo(&ctx, req, &info);
    if (!s.ok()) {
      return Fail("bench serve", absl::UnavailableError(absl::StrCat(server, ": ", s.error_message())));
    }
    vocab = info.vocab_size();
  }
  std::mt19937_64 rng(seed);
  auto make = [&](int64_t i) {
    v1::GenerateRequest r;
    r.set_model(args->Get("--model").value_or(""));
    if (!prompts.empty()) {
      r.set_text(prompts[static_cast<size_t>(i) % prompts.size()]);
    } else {
      // Ids from the middle of the vocabulary: ordinary tokens, no specials.
      std::uniform_int_distribution<int32_t> id(vocab / 4, vocab / 2);
      for (int k = 0; k < input_len; ++k) r.mutable_token_ids()->add_ids(id(rng));
    }
    r.set_max_tokens(output_len);
    r.set_ignore_eos(true);
    return r;
  };
  for (int i = 0; i < warmup; ++i) RunOne(*stub, make(i));

  json results = json::array();
  for (double level : *levels) {
    const int64_t n = requests > 0 ? requests : std::max<int64_t>(8, 4 * static_cast<int64_t>(level));
    std::vector<v1::GenerateRequest> reqs;
    for (int64_t i = 0; i < n; ++i) reqs.push_back(make(i));
    std::vector<Sample> samples(n);
    const Clock::time_point start = Clock::now();
    if (!poisson) {
      std::atomic<int64_t> next{0};
      std::vector<std::thread> threads;
      for (int t = 0; t < static_cast<int>(level); ++t) {
        threads.emplace_back([&] {
          for (int64_t i; (i = next.fetch_add(1)) < n;) samples[i] = RunOne(*stub, reqs[i]);
        });
      }
      for (std::thread& t : threads) t.join();
    } else {
      std::exponential_distribution<double> gap(level);
      std::vector<std::thread> threads;
      Clock::time_point at = start;
      for (int64_t i = 0; i < n; ++i) {
        std::this_thread::sleep_until(at);
        threads.emplace_back([&, i] { samples[i] = RunOne(*stub, reqs[i]); });
        at += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
      }
      for (std::thread& t : threads) t.join();
    }
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> ttft, tpot, itl, e2e;
    std::map<std::string, int64_t> errors;
    int64_t ok = 0, tokens = 0;
    for (const Sample& s : samples) {
      tokens += s.tokens;
      if (!s.ok) {
        ++errors[absl::StatusCodeToString(static_cast<absl::StatusCode>(s.code))];
        continue;
      }
      ++ok;
      ttft.push_back(s.ttft);
      e2e.push_back(s.e2e);
      if (s.tokens > 1) tpot.push_back(s.tpot);
      itl.insert(itl.end(), s.itl.begin(), s.itl.end());
    }
    json r = {{poisson ? "rate" : "concurrency", level}, {"requests", n}, {"completed", ok},
              {"errors", errors}, {"duration_s", wall},
              {"requests_per_s", static_cast<double>(ok) / wall},
              {"output_tokens_per_s", static_cast<double>(tokens) / wall},
              {"ttft", Stats(ttft)}, {"tpot", Stats(tpot)}, {"itl", Stats(itl)}, {"e2e", Stats(e2e)}};
    results.push_back(r);
    if (!args->Has("--json")) {
      auto ms = [&](const char* k, const char* q) {
        return r[k].is_null() ? 0.0 : r[k][q].get<double>();
      };
      if (results.size() == 1) {
        std::printf("| %s | requests | ok | req/s | out tok/s | TTFT mean/p50/p99 ms | "
                    "TPOT mean/p50/p99 ms | ITL p50/p99 ms | E2E p50/p99 ms | errors |\n"
                    "|---|---|---|---|---|---|---|---|---|---|\n",
                    poisson ? "rate" : "concurrency");
      }
      std::string err;
      for (const auto& [k, v] : errors) absl::StrAppend(&err, err.empty() ? "" : ", ", k, " ", v);
      std::printf("| %g | %lld | %lld | %.2f | %.1f | %.1f / %.1f / %.1f | %.1f / %.1f / %.1f | "
                  "%.1f / %.1f | %.0f / %.0f | %s |\n",
                  level, static_cast<long long>(n), static_cast<long long>(ok),
                  r["requests_per_s"].get<double>(), r["output_tokens_per_s"].get<double>(),
                  ms("ttft", "mean_ms"), ms("ttft", "p50_ms"), ms("ttft", "p99_ms"),
                  ms("tpot", "mean_ms"), ms("tpot", "p50_ms"), ms("tpot", "p99_ms"),
                  ms("itl", "p50_ms"), ms("itl", "p99_ms"), ms("e2e", "p50_ms"),
                  ms("e2e", "p99_ms"), err.empty() ? "-" : err.c_str());
      std::fflush(stdout);
    }
  }
  if (args->Has("--json")) {
    std::printf("%s\n", DumpJson({{"server", server}, {"input_len", input_len},
                                  {"output_len", output_len}, {"results", results}}, 2).c_str());
  }
  return 0;
}

}  // namespace tessera::cli
