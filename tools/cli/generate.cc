// tessera generate -m MODEL -p PROMPT [...]: generate text with one model on this process.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "parallel/replica.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/generate.h"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"
#include "tools/cli/npy.h"

namespace tessera::cli {
namespace {

using json = nlohmann::json;

const std::vector<FlagSpec> kFlags = {
    {"--model", "-m", true, "model: .gguf file, Hugging Face folder or alias"},
    {"--prompt", "-p", true, "the prompt text"},
    {"--n-predict", "-n", true, "maximum new tokens (default 128)"},
    {"--temperature", "", true, "0 (or below 1e-5) = greedy (default 0)"},
    {"--top-k", "", true, "keep the K most likely tokens (0 = off)"},
    {"--top-p", "", true, "keep the smallest set with this much probability (1 = off)"},
    {"--min-p", "", true, "drop tokens below P times the top probability (0 = off)"},
    {"--repetition-penalty", "", true, "penalise tokens already in the sequence (1 = off)"},
    {"--seed", "", true, "random seed (default 0)"},
    {"--chat", "", false, "wrap the prompt in the model's chat template"},
    {"--parse-special", "", false,
     "recognise special tokens typed in the prompt (trusted input only; off by default)"},
    {"--json", "", false, "print one JSON object instead of streaming text"},
    {"--dump-logits", "", true, "write the prompt positions' logits as float32 .npy [T, V]"},
    {"--exact", "", false, "dequantize weights to f32 at load (reference path)"},
    {"--kv-type", "", true, kKvTypeHelp},
    {"--tp", "", true, "tensor-parallel ranks (under mpirun; default 1)"},
    {"--ep", "", true, "expert-parallel ranks (under mpirun; default 1)"},
    {"--stats", "", false, "print each rank's collective calls and bytes (--json: every rank's)"},
    {"--timeout", "", true, "seconds a collective may wait for a peer (0.001 to 86400; default 30)"},
    {"--help", "-h", false, "show this help"},
};

// Every rank's counters at every rank (the leader reports them): calls and bytes per kind as
// int64, gathered over the world as bytes.
absl::StatusOr<std::vector<parallel::CollectiveStats>> GatherStats(
    parallel::Communicator* world, const parallel::CollectiveStats& mine) {
  constexpr int kN = parallel::kNumCollectiveKinds;
  std::vector<int64_t> in(2 * kN), out(2 * kN * world->size());
  for (int k = 0; k < kN; ++k) in[2 * k] = mine.by_kind[k].calls, in[2 * k + 1] = mine.by_kind[k].bytes;
  constexpr int64_t kBytes = 2 * kN * sizeof(int64_t);
  if (absl::Status s = world->AllGather(
          kernels::Tensor(out.data(), kernels::DType::kU8, {kBytes * world->size()}),
          kernels::ConstTensor(in.data(), kernels::DType::kU8, {kBytes}));
      !s.ok()) {
    return s;
  }
  std::vector<parallel::CollectiveStats> all(world->size());
  for (int r = 0; r < world->size(); ++r) {
    for (int k = 0; k < kN; ++k) {
      all[r].by_kind[k].calls = out[2 * kN * r + 2 * k];
      all[r].by_kind[k].bytes = out[2 * kN * r + 2 * k + 1];
    }
  }
  return all;
}

// {"all-reduce": {"calls": n, "bytes": b}, ...} for the kinds this rank used.
json StatsJson(const parallel::CollectiveStats& stats) {
  json j = json::object();
  for (int k = 0; k < parallel::kNumCollectiveKinds; ++k) {
    const auto kind = static_cast<parallel::CollectiveKind>(k);
    if (stats[kind].calls == 0) continue;
    j[parallel::CollectiveName(kind)] = {{"calls", stats[kind].calls}, {"bytes", stats[kind].bytes}};
  }
  return j;
}

}  // namespace

int GenerateMain(int argc, char** argv) {
  auto args = Args::Parse(kFlags, argc, argv, 0);
  if (!args.ok()) return Fail("generate", args.status());
  if (args->Has("--help") || !args->Has("--model") || !args->Has("--prompt") ||
      !args->positional().empty()) {
    std::fprintf(args->Has("--help") ? stdout : stderr,
                 "usage: tessera generate -m MODEL -p PROMPT [options]\n%s",
                 FlagHelp(kFlags).c_str());
    return args->Has("--help") ? 0 : 2;
  }
  GenerateOptions opts;
  SamplingParams& sp = opts.sampling;
  // The sampling flags take their type's whole range here: Validate() checks them (naming
  // the parameter), as the engine does for every request.
  constexpr float kF = std::numeric_limits<float>::max();
  constexpr int32_t kI = std::numeric_limits<int32_t>::max();
  for (absl::Status s : {args->GetNumber("--n-predict", &sp.max_new_tokens, -kI, kI),
                         args->GetNumber("--temperature", &sp.temperature, -kF, kF),
                         args->GetNumber("--top-k", &sp.top_k, -kI, kI),
                         args->GetNumber("--top-p", &sp.top_p, -kF, kF),
                         args->GetNumber("--min-p", &sp.min_p, -kF, kF),
                         args->GetNumber("--repetition-penalty", &sp.repetition_penalty, -kF, kF),
                         args->GetNumber("--seed", &sp.seed, uint64_t{0},
                                         std::numeric_limits<uint64_t>::max())}) {
    if (!s.ok()) return Fail("generate", s);
  }
  if (absl::Status s = Validate(sp); !s.ok()) return Fail("generate", s);
  absl::StatusOr<kernels::DType> kv_type = KvTypeArg(*args);
  if (!kv_type.ok()) return Fail("generate", kv_type.status());
  opts.kv_type = *kv_type;

  int tp = 1, ep = 1;
  double timeout_s = 30;
  for (absl::Status s : {args->GetNumber("--tp", &tp, 1, kMaxRanks),
                         args->GetNumber("--ep", &ep, 1, kMaxRanks),
                         args->GetNumber("--timeout", &timeout_s, kMinTimeoutS, kMaxTimeoutS)}) {
    if (!s.ok()) return Fail("generate", s);
  }
  const auto load_start = std::chrono::steady_clock::now();
  absl::StatusOr<LoadedReplica> loaded = LoadReplica(*args, tp, ep, timeout_s, &argc, &argv);
  if (!loaded.ok()) return Fail("generate", loaded.status());
  const std::unique_ptr<ModelSource>& source = loaded->source;
  const std::unique_ptr<parallel::Replica>& replica = loaded->replica;
  const std::unique_ptr<Transformer>& model = loaded->model;
  const bool leader = replica->rank() == 0;
  parallel::Communicator* world = replica->world_comm();
  GenerateResult result;
  std::vector<int32_t> prompt;
  std::unique_ptr<tokenizer::Tokenizer> tok;
  const bool as_json = args->Has("--json");
  std::string text;  // streamed or collected output
  if (!leader) {
    // Workers never see the prompt: they execute the leader's step plans.
    if (absl::Status s = RunWorker(*model, *world); !s.ok()) return Fail("generate", s);
  } else {
    // Whatever fails before the engine starts releases the workers (Generate does too).
    auto fail = [&](absl::Status s) {
      ReleaseWorkers(*world).IgnoreError();
      return Fail("generate", s);
    };
    auto loaded_tok = LoadModelTokenizer(*source, *model);
    if (!loaded_tok.ok()) return fail(loaded_tok.status());
    tok = *std::move(loaded_tok);
    if (args->Has("--chat")) NoteChatTemplate("generate", *tok);
    std::fprintf(stderr, "loaded %s: %s, %.1f MiB of weights in %.2f s\n",
                 source->path().c_str(), model->config().arch.c_str(),
                 model->weight_bytes() / 1048576.0,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start)
                     .count());
    auto prompt_ids = EncodePrompt(*tok, *args->Get("--prompt"), args->Has("--chat"),
                                   args->Has("--parse-special"));
    if (!prompt_ids.ok()) return fail(prompt_ids.status());
    prompt = *std::move(prompt_ids);
    tokenizer::AppendEndIds(*tok, sp.stop_tokens);
    tokenizer::IncrementalDecoder stream(*tok);
    opts.world = world;
    if (!as_json) {
      opts.on_token = [&](int32_t id) {
        std::fputs(stream.Push(id).c_str(), stdout);
        std::fflush(stdout);
      };
    }
    opts.keep_prompt_logits = args->Has("--dump-logits");
    auto generated = Generate(*model, prompt, opts);
    if (!generated.ok()) return Fail("generate", generated.status());
    result = *std::move(generated);
    if (!as_json) text = stream.Flush();
  }
  // This rank's traffic over every group it belongs to: the world (step plans), tp and ep.
  parallel::CollectiveStats stats;
  {
    std::vector<parallel::Communicator*> groups = {replica->tp()};
    if (ep > 1 && replica->ep() != replica->tp()) groups.push_back(replica->ep());
    if (world != replica->tp()) groups.push_back(world);
    for (parallel::Communicator* g : groups) {
      const parallel::CollectiveStats e = g->stats();
      for (int k = 0; k < parallel::kNumCollectiveKinds; ++k) {
        stats.by_kind[k].calls += e.by_kind[k].calls;
        stats.by_kind[k].bytes += e.by_kind[k].bytes;
      }
      stats.seconds += e.seconds;
    }
  }
  // Gathered before the leader returns: every rank takes part.
  std::vector<parallel::CollectiveStats> all_stats;
  if (args->Has("--stats")) {
    auto gathered = GatherStats(replica->world_comm(), stats);
    if (!gathered.ok()) return Fail("generate", gathered.status());
    all_stats = std::move(*gathered);
  }
  auto print_stats = [&] {
    if (!args->Has("--stats")) return;
    std::fprintf(stderr, "rank %d collectives: %s\n", replica->rank(),
                 DumpJson(StatsJson(stats)).c_str());
  };
  if (!leader) {  // only the leader prints the generation
    print_stats();
    return 0;
  }
  if (opts.keep_prompt_logits) {
    const int64_t V = model->config().vocab;
    if (absl::Status s = WriteNpyF32(*args->Get("--dump-logits"), result.prompt_logits,
                                     {static_cast<int64_t>(prompt.size()), V});
        !s.ok()) {
      return Fail("generate", s);
    }
  }
  if (as_json) {
    json j = {{"prompt_ids", prompt},
              {"ids", result.ids},
              {"text", tok->Decode(result.ids, /*skip_special=*/true)},
              {"logprobs", result.logprobs},
              {"finish_reason", result.finish_reason}};
    // MoE models: routed (token, choice) pairs per expert, per layer (prompt and decode).
    if (const auto load = model->ExpertLoad(); !load.empty()) j["expert_load"] = load;
    if (args->Has("--stats")) {  // one entry per rank
      json per_rank = json::array();
      for (const parallel::CollectiveStats& r : all_stats) per_rank.push_back(StatsJson(r));
      j["stats"] = per_rank;
    }
    std::printf("%s\n", DumpJson(j).c_str());
  } else {
    std::printf("%s\n", text.c_str());
  }
  std::fflush(stdout);
  print_stats();
  const size_t n = result.ids.size();
  std::fprintf(stderr,
               "prefill: %zu tokens in %.3f s (%.1f tok/s); decode: %zu tokens in %.3f s "
               "(%.1f tok/s)\n",
               prompt.size(), result.prefill_seconds, prompt.size() / result.prefill_seconds,
               n > 0 ? n - 1 : 0, result.decode_seconds,
               n > 1 ? (n - 1) / result.decode_seconds : 0.0);
  return 0;
}

}  // namespace tessera::cli
