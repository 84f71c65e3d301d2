// Tokenizer::FromGguf: the tokenizer.ggml.* metadata written by llama.cpp's converters.
#include <string>

#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/tokenizer_data.h"

namespace tessera::tokenizer {
namespace {

using gguf::GgufFile;
using gguf::Value;
using gguf::ValueType;

absl::Status KeyError(const GgufFile& f, absl::string_view key, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(f.name(), ": metadata key ", key, ": ", problem));
}

// An optional integer key; out-of-int32 values are errors.
absl::Status OptionalId(const GgufFile& f, absl::string_view key, std::optional<int32_t>& out) {
  if (f.Find(key) == nullptr) return absl::OkStatus();
  absl::StatusOr<int64_t> v = f.GetInt(key);
  if (!v.ok()) return v.status();
  // llama.cpp writes -1 (or UINT32_MAX) for "none".
  if (*v == -1 || *v == 0xFFFFFFFFll) return absl::OkStatus();
  if (*v < 0 || *v > INT32_MAX) return KeyError(f, key, absl::StrCat("id ", *v, " out of range"));
  out = static_cast<int32_t>(*v);
  return absl::OkStatus();
}

absl::StatusOr<bool> OptionalBool(const GgufFile& f, absl::string_view key, bool dflt) {
  if (f.Find(key) == nullptr) return dflt;
  return f.GetBool(key);
}

// The items of an array at `key` whose elements are any integer type.
absl::Status IntArray(const GgufFile& f, absl::string_view key, std::vector<int64_t>& out) {
  const Value* v = f.Find(key);
  if (v == nullptr) return KeyError(f, key, "missing");
  if (!v->is_array()) return KeyError(f, key, "expected an array");
  out.reserve(v->items().size());
  for (size_t i = 0; i < v->items().size(); ++i) {
    std::optional<int64_t> x = v->items()[i].AsInt();
    if (!x) return KeyError(f, key, absl::StrCat("element ", i, " is not an integer"));
    out.push_back(*x);
  }
  return absl::OkStatus();
}

absl::Status LoadMerges(const GgufFile& f, TokenizerData& d) {
  constexpr absl::string_view kKey = "tokenizer.ggml.merges";
  absl::StatusOr<const std::vector<Value>*> merges = f.GetArray(kKey, ValueType::kString);
  if (!merges.ok()) return merges.status();
  d.merges.reserve((*merges)->size());
  std::string joined;
  for (size_t i = 0; i < (*merges)->size(); ++i) {
    const absl::string_view m = *(**merges)[i].AsString();
    // Split at the first space after the first character (a token may start with ' ').
    const size_t sp = m.size() > 1 ? m.find(' ', 1) : absl::string_view::npos;
    if (sp == absl::string_view::npos) {
      return KeyError(f, kKey, absl::StrCat("merge ", i, " '", m, "' is not two tokens"));
    }
    const absl::string_view a = m.substr(0, sp), b = m.substr(sp + 1);
    joined = absl::StrCat(a, b);
    const std::optional<int32_t> ia = d.Find(a), ib = d.Find(b), ir = d.Find(joined);
    if (!ia || !ib || !ir) {
      return KeyError(f, kKey,
                      absl::StrCat("merge ", i, " '", m, "' names a token not in the vocabulary ('",
                                   !ia   ? a
                                   : !ib ? b
                                         : absl::string_view(joined),
                                   "')"));
    }
    d.merges.Add(*ia, *ib, static_cast<int32_t>(i), *ir);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile& f) {
  auto d = std::make_unique<TokenizerData>();
  d->source = f.name();

  absl::StatusOr<absl::string_view> model = f.GetString("tokenizer.ggml.model");
  if (!model.ok()) return model.status();

  // Vocabulary.
  absl::StatusOr<const std::vector<Value>*> tokens =
      f.GetArray("tokenizer.ggml.tokens", ValueType::kString);
  if (!tokens.ok()) return tokens.status();
  const size_t n = (*tokens)->size();
  if (n == 0) return KeyError(f, "tokenizer.ggml.tokens", "empty vocabulary");
  if (n > static_cast<size_t>(INT32_MAX)) return KeyError(f, "tokenizer.ggml.tokens", "too many");
  d->tokens.reserve(n);
  for (const Value& v : **tokens) d->tokens.emplace_back(*v.AsString());

  if (f.Find("tokenizer.ggml.token_type") != nullptr) {
    std::vector<int64_t> types;
    if (absl::Status s = IntArray(f, "tokenizer.ggml.token_type", types); !s.ok()) return s;
    if (types.size() != n) {
      return KeyError(f, "tokenizer.ggml.token_type",
                      absl::StrCat(types.size(), " entries for ", n, " tokens"));
    }
    d->attrs.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (types[i] < 0 || types[i] > 6) {
        return KeyError(f, "tokenizer.ggml.token_type",
                        absl::StrCat("token ", i, " has unknown type ", types[i]));
      }
      d->attrs.push_back(static_cast<TokenAttr>(types[i]));
    }
  }
  if (f.Find("tokenizer.ggml.scores") != nullptr) {
    absl::StatusOr<const std::vector<Value>*> scores =
        f.GetArray("tokenizer.ggml.scores", ValueType::kF32);
    if (!scores.ok()) return scores.status();
    if ((*scores)->size() != n) {
      return KeyError(f, "tokenizer.ggml.scores",
                      absl::StrCat((*scores)->size(), " entries for ", n, " tokens"));
    }
    d->scores.reserve(n);
    for (const Value& v : **scores) d->scores.push_back(static_cast<float>(*v.AsFloat()));
  }

  // Special ids.
  for (const auto& [key, slot] : {std::pair{"tokenizer.ggml.bos_token_id", &d->bos},
                                  std::pair{"tokenizer.ggml.eos_token_id", &d->eos},
                                  std::pair{"tokenizer.ggml.eot_token_id", &d->eot},
                                  std::pair{"tokenizer.ggml.padding_token_id", &d->pad},
                                  std::pair{"tokenizer.ggml.unknown_token_id", &d->unk}}) {
    if (absl::Status s = OptionalId(f, key, *slot); !s.ok()) return s;
    if (*slot && **slot >= static_cast<int64_t>(n)) {
      return KeyError(f, key,
                      absl::StrCat("id ", **slot, " is outside the vocabulary (", n, " tokens)"));
    }
  }
  if (const Value* t = f.Find("tokenizer.chat_template"); t != nullptr) {
    std::optional<absl::string_view> s = t->AsString();
    if (!s) return KeyError(f, "tokenizer.chat_template", "expected a string");
    d->chat_template = std::string(*s);
  }

  std::string pre = "default";
  if (f.Find("tokenizer.ggml.pre") != nullptr) {
    absl::StatusOr<absl::string_view> p = f.GetString("tokenizer.ggml.pre");
    if (!p.ok()) return p.status();
    pre = std::string(*p);
  }
  d->pre_name = pre;

  bool add_bos_default = false, add_space_prefix_default = false;
  if (*model == "gpt2") {
    d->kind = Kind::kByteLevelBpe;
    d->merge_mode = MergeMode::kRank;
    d->byte_level = true;
    absl::StatusOr<std::vector<PreTokenizerStep>> steps = PresetForGgufPre(pre, &d->ignore_merges);
    if (!steps.ok() && steps.status().code() != absl::StatusCode::kNotFound) {
      return KeyError(f, "tokenizer.ggml.pre", steps.status().message());
    }
    if (!steps.ok()) {
      return KeyError(f, "tokenizer.ggml.pre",
                      absl::StrCat("pre-tokenizer '", pre,
                                   "' is not supported (supported: ", KnownGgufPreNames(), ")"));
    }
    d->pre_tokenizers = *std::move(steps);
    // The Llama 3 family adds BOS unless the file says otherwise (as llama.cpp does).
    add_bos_default = d->ignore_merges;
  } else if (*model == "llama") {
    d->kind = Kind::kSentencePieceBpe;
    d->merge_mode = MergeMode::kScore;
    d->byte_fallback = true;
    d->decode_metaspace = true;
    add_bos_default = true;
    add_space_prefix_default = true;
  } else if (*model == "gemma4") {
    // SentencePiece-style vocabulary with a merges table (Hugging Face BPE + byte fallback).
    d->kind = Kind::kSentencePieceBpe;
    d->merge_mode = MergeMode::kRank;
    d->byte_fallback = true;
    d->decode_metaspace = true;
    add_bos_default = true;
  } else {
    return KeyError(f, "tokenizer.ggml.model",
                    absl::StrCat("tokenizer model '", *model,
                                 "' is not supported (supported: gpt2, llama, gemma4; WordPiece "
                                 "'bert', Unigram 't5', 'rwkv' and others are not)"));
  }

  absl::StatusOr<bool> add_bos = OptionalBool(f, "tokenizer.ggml.add_bos_token", add_bos_default);
  if (!add_bos.ok()) return add_bos.status();
  absl::StatusOr<bool> add_eos = OptionalBool(f, "tokenizer.ggml.add_eos_token", false);
  if (!add_eos.ok()) return add_eos.status();
  absl::StatusOr<bool> add_space_prefix =
      OptionalBool(f, "tokenizer.ggml.add_space_prefix", add_space_prefix_default);
  if (!add_space_prefix.ok()) return add_space_prefix.status();
  // An explicit add_*_token without the id is an error; a default just does not apply.
  if (*add_bos && d->bos) {
    d->prefix_ids.push_back(*d->bos);
  } else if (*add_bos && f.Find("tokenizer.ggml.add_bos_token") != nullptr) {
    return KeyError(f, "tokenizer.ggml.bos_token_id", "missing but add_bos_token is set");
  }
  if (*add_eos && d->eos) {
    d->suffix_ids.push_back(*d->eos);
  } else if (*add_eos) {
    return KeyError(f, "tokenizer.ggml.eos_token_id", "missing but add_eos_token is set");
  }

  if (d->kind == Kind::kSentencePieceBpe) {
    if (*add_space_prefix) {
      d->normalizers.push_back({NormalizerStep::Type::kPrepend, NormalForm::kNfc, " ", ""});
      d->decode_strip_leading_space = true;
    }
    d->normalizers.push_back(
        {NormalizerStep::Type::kReplace, NormalForm::kNfc, " ", "\xE2\x96\x81"});
  }

  // Control and user-defined tokens are matched in the text before the model runs.
  for (size_t i = 0; i < n; ++i) {
    const TokenAttr a = d->attrs.empty() ? TokenAttr::kNormal : d->attrs[i];
    if (a != TokenAttr::kControl && a != TokenAttr::kUserDefined) continue;
    d->added.push_back({d->tokens[i], static_cast<int32_t>(i), a == TokenAttr::kControl});
  }

  for (size_t i = 0; i < n; ++i) d->token_to_id[d->tokens[i]] = static_cast<int32_t>(i);
  if (d->merge_mode == MergeMode::kRank) {
    if (absl::Status s = LoadMerges(f, *d); !s.ok()) return s;
  }
  if (absl::Status s = d->Finish(); !s.ok()) return s;
  return std::make_unique<Tokenizer>(std::move(d));
}

}  // namespace tessera::tokenizer
