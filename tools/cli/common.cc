#include "tools/cli/common.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "kernels/buffer.h"

namespace tessera::cli {

using json = nlohmann::json;

namespace {

// Why the model's own chat template cannot render a one-message conversation; "" when it
// can (or there is none).
std::string ChatTemplateProblem(const tokenizer::Tokenizer& tok) {
  if (tok.chat_template().empty()) return "";
  const tokenizer::ChatMessage probe{"user", "Hello"};
  auto r = tokenizer::RenderModelTemplate(tok, {&probe, 1}, /*add_generation_prompt=*/true);
  return r.ok() ? "" : std::string(r.status().message());
}

}  // namespace

json TokenizerSummary(const tokenizer::Tokenizer& tok) {
  json j;
  j["kind"] = tok.kind() == tokenizer::Kind::kByteLevelBpe ? "byte-level BPE"
                                                           : "SentencePiece BPE (byte fallback)";
  j["vocab_size"] = tok.vocab_size();
  j["pre_tokenizer"] = std::string(tok.pre_tokenizer_name());
  auto special = [&](const char* name, std::optional<int32_t> id) {
    if (id) {
      j["special"][name] = {{"id", *id}, {"text", std::string(tok.TokenText(*id))}};
    } else {
      j["special"][name] = nullptr;
    }
  };
  special("bos", tok.bos_id());
  special("eos", tok.eos_id());
  special("eot", tok.eot_id());
  special("pad", tok.pad_id());
  special("unk", tok.unk_id());
  j["add_bos"] = tok.add_bos();
  j["add_eos"] = tok.add_eos();
  int special_count = 0;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) special_count += tok.IsSpecial(id);
  j["special_token_count"] = special_count;
  // "jinja": the model's own template; a built-in format only for files without one.
  const std::string chat = tokenizer::ChatTemplateKind(tok);
  j["chat_format"] = chat.empty() ? json(nullptr) : json(chat);
  if (chat == "jinja") {
    const std::string problem = ChatTemplateProblem(tok);
    j["chat_template_error"] = problem.empty() ? json(nullptr) : json(problem);
  }
  return j;
}

absl::StatusOr<int64_t> KvPoolBytes(absl::string_view spec) {
  const std::string what = absl::StrCat("--kv-cache-memory '", spec, "'");
  double fraction = 0;
  if (absl::StrContains(spec, '.')) {
    if (!absl::SimpleAtod(spec, &fraction) || !(fraction > 0 && fraction <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": a fraction of free memory must be in (0, 1]"));
    }
    return static_cast<int64_t>(fraction * static_cast<double>(kernels::AvailableMemoryBytes()));
  }
  int64_t unit = 1;
  absl::string_view digits = spec;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'K': unit = int64_t{1} << 10; break;
      case 'M': unit = int64_t{1} << 20; break;
      case 'G': unit = int64_t{1} << 30; break;
      default: break;
    }
    if (unit > 1) digits.remove_suffix(1);
  }
  int64_t n = 0;
  if (!absl::SimpleAtoi(digits, &n) || n < 1 || n > (int64_t{1} << 50) / unit) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": give bytes (a positive integer, optionally with K, M or G) or a fraction "
              "of free memory such as 0.5"));
  }
  return n * unit;
}

absl::StatusOr<kernels::DType> KvTypeArg(const Args& args) {
  absl::StatusOr<kernels::DType> t = KvTypeFromName(args.Get("--kv-type").value_or("f16"));
  if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat("--kv-type: ", t.status().message()));
  return t;
}

int64_t KvBytesPerToken(const Transformer& model, kernels::DType kv_type) {
  return model.CacheShape(1, 1, kv_type).bytes_per_token();
}

absl::StatusOr<int64_t> KvBlocksFor(const Transformer& model, int64_t pool_bytes,
                                    int64_t block_size, kernels::DType kv_type, bool print) {
  const int64_t per_token = KvBytesPerToken(model, kv_type);
  const int64_t blocks = pool_bytes / (per_token * block_size);
  if (blocks < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv-cache-memory: ", pool_bytes, " bytes hold no block of ", block_size,
                     " tokens (", per_token * block_size, " bytes per block on this rank)"));
  }
  const int64_t capped = std::min<int64_t>(blocks, INT32_MAX);
  if (print) {
    const int64_t tokens = capped * block_size;
    std::fprintf(stderr,
                 "kv cache: %lld blocks of %lld tokens = %lld tokens, %s, %lld bytes per token "
                 "per rank (%.1f MiB); %lld sequences at the full context of %lld\n",
                 static_cast<long long>(capped), static_cast<long long>(block_size),
                 static_cast<long long>(tokens), std::string(kernels::Name(kv_type)).c_str(),
                 static_cast<long long>(per_token),
                 tokens * per_token / 1048576.0,
                 static_cast<long long>(tokens / model.config().context),
                 static_cast<long long>(model.config().context));
  }
  return capped;
}

std::vector<FlagSpec> EngineFlagSpecs(int64_t default_max_seqs) {
  return {
      {"--max-seqs", "", true,
       absl::StrCat("sequences running at once (1 to 4096; default ", default_max_seqs, ")")},
      {"--max-batch-tokens", "", true, "tokens computed per step (1 to 65536; default 512)"},
      {"--kv-cache-memory", "", true,
       "KV pool per rank: bytes (512M, 4G) or a fraction of free memory (0.2; the default, "
       "capped at what --max-seqs sequences at the full context need)"},
      {"--kv-type", "", true, kKvTypeHelp},
  };
}

absl::StatusOr<EngineFlags> ParseEngineFlags(const Args& args, int64_t default_max_seqs) {
  EngineFlags f;
  f.max_seqs = default_max_seqs;
  for (absl::Status s : {args.GetNumber("--max-seqs", &f.max_seqs, int64_t{1}, int64_t{4096}),
                         args.GetNumber("--max-batch-tokens", &f.max_batch_tokens, int64_t{1},
                                        int64_t{65536})}) {
    if (!s.ok()) return s;
  }
  absl::StatusOr<int64_t> pool = KvPoolBytes(args.Get("--kv-cache-memory").value_or("0.2"));
  if (!pool.ok()) return pool.status();
  f.pool_bytes = *pool;
  f.pool_given = args.Has("--kv-cache-memory");
  absl::StatusOr<kernels::DType> kv_type = KvTypeArg(args);
  if (!kv_type.ok()) return kv_type.status();
  f.kv_type = *kv_type;
  return f;
}

absl::StatusOr<EngineConfig> EngineConfigFor(const EngineFlags& f, const Transformer& model) {
  constexpr int64_t kBlock = 16;
  int64_t pool = f.pool_bytes;
  if (!f.pool_given) {  // the default: no more than the sequences can use
    pool = std::min(pool, f.max_seqs * model.config().context * KvBytesPerToken(model, f.kv_type));
  }
  absl::StatusOr<int64_t> blocks = KvBlocksFor(model, pool, kBlock, f.kv_type, /*print=*/true);
  if (!blocks.ok()) return blocks.status();
  return EngineConfig{.kv_blocks = *blocks, .block_size = kBlock,
                      .max_batch_tokens = f.max_batch_tokens, .max_seqs = f.max_seqs,
                      .kv_type = f.kv_type};
}

absl::StatusOr<LoadedReplica> LoadReplica(const Args& args, int tp, int ep, double timeout_s,
                                          int* argc, char*** argv) {
  LoadedReplica r;
  auto source = ModelSource::Open(*args.Get("--model"));
  if (!source.ok()) return source.status();
  r.source = *std::move(source);
  if (r.source->config() == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(r.source->path(), ": holds no model weights (tokenizer files only)"));
  }
  auto replica = parallel::Replica::Join(argc, argv, tp, ep, ShapeOf(*r.source),
                                         absl::Seconds(timeout_s));
  if (!replica.ok()) return replica.status();
  r.replica = *std::move(replica);
  auto model = Transformer::Load(
      *r.source, r.replica->tp(),
      LoadOptions{.exact = args.Has("--exact"), .ep = ep > 1 ? r.replica->ep() : nullptr});
  if (!model.ok()) return model.status();
  r.model = *std::move(model);
  std::fprintf(stderr, "%s; weights %lld bytes (%.1f MiB), routed experts %lld bytes\n",
               r.replica->Describe().c_str(), static_cast<long long>(r.model->weight_bytes()),
               r.model->weight_bytes() / 1048576.0,
               static_cast<long long>(r.model->routed_expert_bytes()));
  return r;
}

absl::Status CheckTokenizerVocab(const ModelConfig& model, const tokenizer::Tokenizer& tok) {
  if (model.vocab == tok.vocab_size()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("the model's vocabulary (", model.vocab,
                                                 ") and its tokenizer's (", tok.vocab_size(),
                                                 ") differ"));
}

absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadModelTokenizer(const ModelSource& source,
                                                                         const Transformer& model) {
  auto tok = LoadTokenizer(source);
  if (!tok.ok()) return tok.status();
  if (absl::Status s = CheckTokenizerVocab(model.config(), **tok); !s.ok()) return s;
  return tok;
}

void NoteChatTemplate(const char* cmd, const tokenizer::Tokenizer& tok) {
  const std::string kind = tokenizer::ChatTemplateKind(tok);
  if (kind == "jinja") {
    if (const std::string problem = ChatTemplateProblem(tok); !problem.empty()) {
      std::fprintf(stderr, "tessera %s: warning: chat requests will fail: %s\n", cmd,
                   problem.c_str());
    }
  } else if (!kind.empty()) {
    std::fprintf(stderr,
                 "tessera %s: the model has no chat template; chat uses the built-in %s format\n",
                 cmd, kind.c_str());
  }
}

int Fail(const char* cmd, const absl::Status& status) {
  std::fprintf(stderr, "tessera %s: %s\n", cmd, std::string(status.message()).c_str());
  return 1;
}

std::string DumpJson(const json& j, int indent) {
  return j.dump(indent, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

}  // namespace tessera::cli
