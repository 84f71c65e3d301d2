// tessera batch -m MODEL --input prompts.jsonl --output results.jsonl: offline inference
// over a file of requests, all through the engine's scheduler (continuous batching), with
// a progress line on stderr. Under mpirun only rank 0 reads and writes files; the other
// ranks execute its step plans.
//
// Input: one JSON object per line: "id" (echoed back), then "prompt" (text), "messages"
// (chat: [{"role", "content"}], formatted with the model's template) or "prompt_ids", and
// optionally "max_tokens", "temperature", "top_k", "top_p", "min_p", "seed", "stop" (a
// string or strings) and "stop_token_ids". Output: one line per input line, in input
// order: "id", "text", "ids", "finish_reason" ("stop" or "length"), "usage"
// {"prompt_tokens", "completion_tokens"}; a line that cannot run gets "id", "line" and
// "error" instead, and the rest of the file still runs. Blank lines are skipped.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <fstream>
#include <limits>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "parallel/replica.h"
#include "runtime/engine/engine.h"
#include "runtime/serving/stop_strings.h"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"

namespace tessera::cli {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxLineBytes = 64 << 20;
constexpr int kMaxJsonDepth = 16;
constexpr size_t kMaxStops = 16;

constexpr int64_t kDefaultMaxSeqs = 16;

const std::vector<FlagSpec> kFlags = [] {
  std::vector<FlagSpec> f = {
      {"--model", "-m", true, "model: .gguf file, Hugging Face folder or alias"},
      {"--input", "-i", true, "requests, one JSON object per line"},
      {"--output", "-o", true, "results, one JSON object per input line, in input order"},
      {"--max-tokens", "", true, "default max_tokens of a request (default 128)"},
      {"--exact", "", false, "dequantize weights to f32 at load (reference path)"},
      {"--tp", "", true, "tensor-parallel ranks (under mpirun; default 1)"},
      {"--ep", "", true, "expert-parallel ranks (under mpirun; default 1)"},
      {"--timeout", "", true, "seconds a collective may wait for a peer (0.001 to 86400; default 30)"},
      {"--quiet", "-q", false, "no progress line"},
      {"--help", "-h", false, "show this help"},
  };
  for (FlagSpec& e : EngineFlagSpecs(kDefaultMaxSeqs)) f.push_back(std::move(e));
  return f;
}();

// One input line, parsed.
struct Item {
  int64_t line = 0;
  json id;
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  std::vector<std::string> stops;
};

absl::Status Bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("\"", field, "\" ", why));
}

template <typename T>
absl::Status GetInt(const json& j, const char* field, T lo, T hi, T* out) {
  if (!j.contains(field)) return absl::OkStatus();
  const json& v = j[field];
  if (!v.is_number_integer()) return Bad(field, "must be an integer");
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi) || (lo > 0 && u < static_cast<uint64_t>(lo))) {
      return Bad(field, absl::StrCat("must be in [", lo, ", ", hi, "], got ", u));
    }
    *out = static_cast<T>(u);
    return absl::OkStatus();
  }
  const int64_t x = v.get<int64_t>();
  if (x < static_cast<int64_t>(lo) || (hi <= INT64_MAX && x > static_cast<int64_t>(hi))) {
    return Bad(field, absl::StrCat("must be in [", lo, ", ", hi, "], got ", x));
  }
  *out = static_cast<T>(x);
  return absl::OkStatus();
}

absl::Status GetFloat(const json& j, const char* field, float* out) {
  if (!j.contains(field)) return absl::OkStatus();
  if (!j[field].is_number()) return Bad(field, "must be a number");
  const double x = j[field].get<double>();
  if (!(std::fabs(x) <= std::numeric_limits<float>::max())) {  // NaN fails too
    return Bad(field, absl::StrCat("is ", x, ", outside the float range"));
  }
  *out = static_cast<float>(x);  // Validate() checks the parameter's own range
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> IdList(const json& v, const char* field, int64_t vocab) {
  if (!v.is_array()) return Bad(field, "must be an array of token ids");
  std::vector<int32_t> ids;
  for (const json& x : v) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= vocab) {
      return Bad(field, absl::StrCat("holds ", x.dump(), ", not a token id in [0, ", vocab, ")"));
    }
    ids.push_back(x.get<int32_t>());
  }
  return ids;
}

absl::StatusOr<json> ParseLine(const std::string& line) {
  if (line.size() > kMaxLineBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the line has ", line.size(), " bytes, more than ", kMaxLineBytes));
  }
  bool too_deep = false;
  json j = json::parse(
      line,
      [&](int depth, json::parse_event_t, json&) {
        if (depth > kMaxJsonDepth) too_deep = true;
        return !too_deep;
      },
      /*allow_exceptions=*/false);
  if (too_deep) {
    return absl::InvalidArgumentError(absl::StrCat("JSON nested deeper than ", kMaxJsonDepth));
  }
  if (j.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  return j;
}

// The request of one parsed line; `id` is filled in as soon as it is known.
absl::StatusOr<Item> ParseItem(const json& j, const tokenizer::Tokenizer& tok,
                               int32_t default_max_tokens, json* id) {
  static const std::vector<std::string> kKnown = {
      "id", "prompt", "messages", "prompt_ids", "max_tokens", "temperature", "top_k", "top_p",
      "min_p", "seed", "stop", "stop_token_ids"};
  if (!j.contains("id")) return absl::InvalidArgumentError("the request has no \"id\"");
  *id = j["id"];
  for (const auto& [key, value] : j.items()) {
    if (std::find(kKnown.begin(), kKnown.end(), key) == kKnown.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown field \"", key, "\" (known: ",
                                                     absl::StrJoin(kKnown, ", "), ")"));
    }
  }
  Item item;
  item.id = j["id"];
  const int n_inputs = j.contains("prompt") + j.contains("messages") + j.contains("prompt_ids");
  if (n_inputs != 1) {
    return absl::InvalidArgumentError(
        "give exactly one of \"prompt\", \"messages\" and \"prompt_ids\"");
  }
  const int64_t V = tok.vocab_size();
  if (j.contains("prompt")) {
    if (!j["prompt"].is_string()) return Bad("prompt", "must be a string");
    auto ids = EncodePrompt(tok, j["prompt"].get<std::string>(), /*chat=*/false,
                            /*parse_special=*/false);
    if (!ids.ok()) return ids.status();
    item.prompt = *std::move(ids);
  } else if (j.contains("messages")) {
    const json& m = j["messages"];
    if (!m.is_array() || m.empty()) return Bad("messages", "must be a non-empty array");
    std::vector<tokenizer::ChatMessage> msgs;
    for (const json& x : m) {
      if (!x.is_object() || !x.contains("role") || !x.contains("content") ||
          !x["role"].is_string() || !x["content"].is_string() || x.size() != 2) {
        return Bad("messages", "must hold objects {\"role\": string, \"content\": string}");
      }
      msgs.push_back({x["role"].get<std::string>(), x["content"].get<std::string>()});
    }
    auto ids = EncodeMessages(tok, msgs, /*parse_special=*/false);
    if (!ids.ok()) return ids.status();
    item.prompt = *std::move(ids);
  } else {
    auto ids = IdList(j["prompt_ids"], "prompt_ids", V);
    if (!ids.ok()) return ids.status();
    item.prompt = *std::move(ids);
  }
  if (item.prompt.empty()) return absl::InvalidArgumentError("the prompt has no tokens");
  SamplingParams& sp = item.sampling;
  sp.max_new_tokens = default_max_tokens;
  for (absl::Status s :
       {GetInt<int32_t>(j, "max_tokens", 1, std::numeric_limits<int32_t>::max(), &sp.max_new_tokens),
        GetInt<int32_t>(j, "top_k", 0, std::numeric_limits<int32_t>::max(), &sp.top_k),
        GetInt<uint64_t>(j, "seed", 0, std::numeric_limits<uint64_t>::max(), &sp.seed),
        GetFloat(j, "temperature", &sp.temperature), GetFloat(j, "top_p", &sp.top_p),
        GetFloat(j, "min_p", &sp.min_p)}) {
    if (!s.ok()) return s;
  }
  if (absl::Status s = Validate(sp); !s.ok()) return s;
  if (j.contains("stop")) {
    const json& st = j["stop"];
    if (st.is_string()) {
      item.stops.push_back(st.get<std::string>());
    } else if (st.is_array() && st.size() <= kMaxStops) {
      for (const json& x : st) {
        if (!x.is_string()) return Bad("stop", "must be a string or an array of strings");
        item.stops.push_back(x.get<std::string>());
      }
    } else {
      return Bad("stop", absl::StrCat("must be a string or an array of at most ", kMaxStops,
                                      " strings"));
    }
  }
  if (j.contains("stop_token_ids")) {
    auto ids = IdList(j["stop_token_ids"], "stop_token_ids", V);
    if (!ids.ok()) return ids.status();
    sp.stop_tokens = *std::move(ids);
  }
  tokenizer::AppendEndIds(tok, sp.stop_tokens);
  return item;
}

// A request on its way through the engine.
struct Running {
  Item item;
  std::vector<int32_t> ids;
  tokenizer::IncrementalDecoder decoder;
  serving::StopStrings stops;
};

std::string ErrorLine(int64_t line, const json& id, const absl::Status& s) {
  return DumpJson({{"id", id}, {"line", line}, {"error", std::string(s.message())}});
}

class Progress {
 public:
  Progress(int64_t total, bool quiet)
      : total_(total), quiet_(quiet), tty_(isatty(STDERR_FILENO) != 0), start_(Clock::now()) {}
  // `done`: result lines decided (errors included); `ran`: requests the engine finished.
  void Update(int64_t done, int64_t ran, int64_t tokens, bool final) {
    if (quiet_) return;
    const auto now = Clock::now();
    const double since_print = std::chrono::duration<double>(now - last_).count();
    if (!final && since_print < (tty_ ? 0.25 : 10.0)) return;
    last_ = now;
    const double s = std::chrono::duration<double>(now - start_).count();
    const double rate = s > 0 ? tokens / s : 0;
    std::string eta = "?";
    if (done >= total_) {
      eta = "0s";
    } else if (ran > 0) {
      eta = absl::StrFormat("%.1fs", s / ran * static_cast<double>(total_ - done));
    }
    std::fprintf(stderr, "%s%lld/%lld requests, %lld tokens, %.1f tok/s, ETA %s, %.1fs%s",
                 tty_ ? "\r" : "", static_cast<long long>(done), static_cast<long long>(total_),
                 static_cast<long long>(tokens), rate, eta.c_str(), s,
                 tty_ && !final ? "\33[K" : "\n");
    std::fflush(stderr);
  }

 private:
  const int64_t total_;
  const bool quiet_, tty_;
  const Clock::time_point start_;
  Clock::time_point last_{};
};

// Non-blank lines of `in` (then rewound), for the progress line's total.
int64_t CountRequests(std::ifstream& in) {
  int64_t n = 0;
  std::string line;
  while (std::getline(in, line)) n += line.find_first_not_of(" \t\r") != std::string::npos;
  in.clear();
  in.seekg(0);
  return n;
}

// The leader's part: read, run, write. Lines are read as the queue empties (at most
// 4 x max_seqs requests wait at once), so that a large file neither sits in memory
// tokenized nor keeps the workers waiting for a first plan. Returns the exit code.
int RunLeader(const Args& args, const Transformer& model, const tokenizer::Tokenizer& tok,
              parallel::Communicator* world, const EngineConfig& config, int32_t default_max) {
  auto fail = [&](absl::Status s) {
    ReleaseWorkers(*world).IgnoreError();
    return Fail("batch", s);
  };
  const std::string in_path = *args.Get("--input"), out_path = *args.Get("--output");
  if (in_path == out_path) {
    return fail(absl::InvalidArgumentError("--input and --output name the same file"));
  }
  std::ifstream in(in_path, std::ios::binary);
  if (!in) return fail(absl::NotFoundError(absl::StrCat(in_path, ": cannot open for reading")));
  std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
  if (!out) return fail(absl::PermissionDeniedError(absl::StrCat(out_path, ": cannot open for writing")));
  const int64_t total = CountRequests(in);

  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(model, config, world);
  if (!engine.ok()) return Fail("batch", engine.status());  // Create released the workers
  // Result lines by input order, from `written` on; each is written as soon as those
  // before it are.
  std::deque<std::optional<std::string>> results;
  int64_t written = 0;
  std::map<int64_t, Running> running;  // by engine request id = result index
  auto result = [&](int64_t index) -> std::optional<std::string>& { return results[index - written]; };
  auto flush = [&] {
    while (!results.empty() && results.front()) {
      out << *results.front() << '\n';
      results.pop_front();
      ++written;
    }
    out.flush();
  };
  int64_t line_no = 0, done = 0, ran = 0, tokens = 0;
  bool eof = false;
  const size_t queue = static_cast<size_t>(4 * config.max_seqs);
  // Reads lines until `queue` requests wait or the file ends.
  auto top_up = [&] {
    std::string line;
    while (!eof && running.size() < queue) {
      if (!std::getline(in, line)) {
        eof = true;
        break;
      }
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const int64_t index = written + static_cast<int64_t>(results.size());
      results.emplace_back();
      json id = nullptr;
      absl::StatusOr<json> j = ParseLine(line);
      absl::StatusOr<Item> item = j.ok() ? ParseItem(*j, tok, default_max, &id) : j.status();
      absl::StatusOr<serving::StopStrings> stops =
          item.ok() ? serving::StopStrings::Create(item->stops) : item.status();
      absl::Status added = stops.ok() ? (*engine)->Add({.id = index,
                                                        .prompt = item->prompt,
                                                        .sampling = item->sampling})
                                      : stops.status();
      if (!added.ok()) {
        result(index) = ErrorLine(line_no, id, added);
        ++done;
        continue;
      }
      item->line = line_no;
      running.emplace(index, Running{*std::move(item), {}, tokenizer::IncrementalDecoder(tok),
                                     *std::move(stops)});
    }
  };
  // A failed step: every request still open, and every line not read, gets the error.
  auto fail_rest = [&](const absl::Status& s) {
    for (auto& [index, r] : running) result(index) = ErrorLine(r.item.line, r.item.id, s);
    running.clear();
    std::string line;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      results.emplace_back(ErrorLine(line_no, nullptr, s));
    }
    flush();
    return Fail("batch", s);
  };
  Progress progress(total, args.Has("--quiet"));
  for (;;) {
    top_up();
    flush();
    if (in.bad()) return fail_rest(absl::DataLossError(absl::StrCat(in_path, ": read error")));
    if ((*engine)->idle()) {
      if (eof) break;
      continue;  // every line read so far was refused; read on
    }
    absl::StatusOr<std::vector<EngineOutput>> step = (*engine)->Step();
    if (!step.ok()) return fail_rest(step.status());
    for (EngineOutput& o : *step) {
      auto it = running.find(o.id);
      if (it == running.end()) continue;  // cancelled for a stop string: already decided
      Running& r = it->second;
      std::optional<std::string> finish;
      if (!o.error.ok()) {
        result(o.id) = ErrorLine(r.item.line, r.item.id, o.error);
      } else {
        for (int32_t t : o.tokens) {
          r.ids.push_back(t);
          ++tokens;
          if (r.stops.Append(r.decoder.Push(t))) break;
        }
        if (!r.stops.done() && o.finish) r.stops.Append(r.decoder.Flush());
        if (r.stops.done()) {
          (*engine)->Cancel(o.id);  // false if it finished this step anyway
          finish = "stop";
        } else if (o.finish) {
          finish = *o.finish == serving::FinishReason::kStop ? "stop" : "length";
        }
        if (finish) {
          result(o.id) = DumpJson({{"id", r.item.id},
                                   {"text", r.stops.text()},
                                   {"ids", r.ids},
                                   {"finish_reason", *finish},
                                   {"usage",
                                    {{"prompt_tokens", r.item.prompt.size()},
                                     {"completion_tokens", r.ids.size()}}}});
          ++ran;
        }
      }
      if (result(o.id)) {
        running.erase(it);
        ++done;
      }
    }
    flush();
    progress.Update(done, ran, tokens, false);
  }
  progress.Update(done, ran, tokens, true);
  if (!args.Has("--quiet")) {
    const serving::SchedulerStats st = (*engine)->stats();
    std::fprintf(stderr, "batch: %lld preemptions (KV pool of %lld blocks)\n",
                 static_cast<long long>(st.preemptions), static_cast<long long>(config.kv_blocks));
  }
  if (absl::Status s = (*engine)->Shutdown(); !s.ok()) return Fail("batch", s);
  if (!out) return Fail("batch", absl::DataLossError(absl::StrCat(out_path, ": write error")));
  return 0;
}

}  // namespace

int BatchMain(int argc, char** argv) {
  auto args = Args::Parse(kFlags, argc, argv, 0);
  if (!args.ok()) return Fail("batch", args.status());
  if (args->Has("--help") || !args->Has("--model") || !args->Has("--input") ||
      !args->Has("--output") || !args->positional().empty()) {
    std::fprintf(args->Has("--help") ? stdout : stderr,
                 "usage: tessera batch -m MODEL --input IN.jsonl --output OUT.jsonl [options]\n%s",
                 FlagHelp(kFlags).c_str());
    return args->Has("--help") ? 0 : 2;
  }
  int tp = 1, ep = 1;
  int32_t default_max = 128;
  double timeout_s = 30;
  for (absl::Status s : {args->GetNumber("--tp", &tp, 1, kMaxRanks),
                         args->GetNumber("--ep", &ep, 1, kMaxRanks),
                         args->GetNumber("--max-tokens", &default_max, 1,
                                         std::numeric_limits<int32_t>::max()),
                         args->GetNumber("--timeout", &timeout_s, kMinTimeoutS, kMaxTimeoutS)}) {
    if (!s.ok()) return Fail("batch", s);
  }
  absl::StatusOr<EngineFlags> engine_flags = ParseEngineFlags(*args, kDefaultMaxSeqs);
  if (!engine_flags.ok()) return Fail("batch", engine_flags.status());
  absl::StatusOr<LoadedReplica> loaded = LoadReplica(*args, tp, ep, timeout_s, &argc, &argv);
  if (!loaded.ok()) return Fail("batch", loaded.status());
  const Transformer& model = *loaded->model;
  parallel::Communicator* world = loaded->replica->world_comm();
  if (loaded->replica->rank() != 0) {
    absl::Status s = RunWorker(model, *world);
    return s.ok() ? 0 : Fail("batch", s);
  }
  auto fail = [&](absl::Status s) {
    ReleaseWorkers(*world).IgnoreError();
    return Fail("batch", s);
  };
  auto tok = LoadModelTokenizer(*loaded->source, model);
  if (!tok.ok()) return fail(tok.status());
  NoteChatTemplate("batch", **tok);
  absl::StatusOr<EngineConfig> config = EngineConfigFor(*engine_flags, model);
  if (!config.ok()) return fail(config.status());
  return RunLeader(*args, model, **tok, world, *config, default_max);
}

}  // namespace tessera::cli
