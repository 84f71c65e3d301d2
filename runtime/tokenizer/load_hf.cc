// Tokenizer::FromHfDir: Hugging Face tokenizer.json (+ tokenizer_config.json).
//
// Supported: model BPE (merges as "a b" strings or [a, b] pairs, byte_fallback, fuse_unk,
// ignore_merges); normalizers NFC/NFD/NFKC/NFKD, Prepend, Replace (string pattern), Strip,
// Sequence; pre-tokenizers Split, ByteLevel, Digits, Metaspace, Punctuation, Whitespace,
// WhitespaceSplit, Sequence; decoders ByteLevel, Replace, ByteFallback, Fuse, Strip,
// Metaspace, Sequence; post-processors TemplateProcessing, ByteLevel, Bert/Roberta,
// Sequence. Anything else is refused with an error naming the file and the JSON path.
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "runtime/io/mapped_file.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/tokenizer_data.h"
#include "runtime/tokenizer/tokenizer_json.h"

namespace tessera::tokenizer {
namespace {

using json = nlohmann::json;

class HfLoader {
 public:
  HfLoader(std::string file, TokenizerData& d, const TokenizerJson* vocab)
      : file_(std::move(file)), d_(d), vocab_(vocab) {}

  absl::Status Load(const json& root);
  // `text` is tokenizer_config.json; `path` names it in errors.
  absl::Status LoadConfig(absl::string_view text, const std::string& path);

 private:
  absl::Status Err(absl::string_view where, absl::string_view problem) const {
    return absl::InvalidArgumentError(absl::StrCat(file_, ": ", where, ": ", problem));
  }
  absl::Status Unsupported(absl::string_view where, absl::string_view what) const {
    return absl::UnimplementedError(
        absl::StrCat(file_, ": ", where, ": ", what, " is not supported"));
  }
  static std::string Type(const json& j) {
    if (!j.is_object()) return "";
    auto it = j.find("type");
    return it != j.end() && it->is_string() ? it->get<std::string>() : "";
  }
  static bool Bool(const json& j, const char* key, bool dflt) {
    auto it = j.find(key);
    return it != j.end() && it->is_boolean() ? it->get<bool>() : dflt;
  }

  absl::Status Model(const json& m);
  absl::Status AddedTokens(const json& a);
  absl::Status Normalizer(const json& n, absl::string_view where);
  absl::Status PreTokenizer(const json& p, absl::string_view where);
  absl::Status Decoder(const json& dec, absl::string_view where);
  absl::Status PostProcessor(const json& p, absl::string_view where);
  absl::Status AddSplit(const json& pattern, SplitBehavior behavior, bool invert,
                        absl::string_view where);
  absl::StatusOr<SplitBehavior> Behavior(const json& j, absl::string_view where) const;
  // The id of a special-token setting in tokenizer_config.json (string or {content}).
  std::optional<int32_t> ConfigToken(const json& cfg, const char* key) const;

  std::string file_;
  TokenizerData& d_;
  const TokenizerJson* vocab_;  // model.vocab, streamed out of the JSON tree
  std::vector<std::string> pre_names_;
};

absl::Status HfLoader::Load(const json& root) {
  if (!root.is_object()) return Err("top level", "not a JSON object");
  auto model = root.find("model");
  if (model == root.end() || !model->is_object()) return Err("model", "missing");
  if (absl::Status s = Model(*model); !s.ok()) return s;
  if (auto a = root.find("added_tokens"); a != root.end() && !a->is_null()) {
    if (absl::Status s = AddedTokens(*a); !s.ok()) return s;
  }
  if (auto n = root.find("normalizer"); n != root.end() && !n->is_null()) {
    if (absl::Status s = Normalizer(*n, "normalizer"); !s.ok()) return s;
  }
  if (auto p = root.find("pre_tokenizer"); p != root.end() && !p->is_null()) {
    if (absl::Status s = PreTokenizer(*p, "pre_tokenizer"); !s.ok()) return s;
  }
  if (auto dec = root.find("decoder"); dec != root.end() && !dec->is_null()) {
    if (absl::Status s = Decoder(*dec, "decoder"); !s.ok()) return s;
  }
  if (auto p = root.find("post_processor"); p != root.end() && !p->is_null()) {
    if (absl::Status s = PostProcessor(*p, "post_processor"); !s.ok()) return s;
  }
  d_.pre_name = absl::StrCat("hf:", pre_names_.empty() ? "none" : absl::StrJoin(pre_names_, "+"));
  d_.kind = d_.byte_level ? Kind::kByteLevelBpe : Kind::kSentencePieceBpe;
  return absl::OkStatus();
}

absl::Status HfLoader::Model(const json& m) {
  const std::string type = Type(m);
  if (type != "BPE" && !(type.empty() && m.contains("merges"))) {
    return Unsupported("model.type", absl::StrCat("model '", type, "' (only BPE)"));
  }
  if (auto dr = m.find("dropout"); dr != m.end() && dr->is_number() && dr->get<double>() > 0) {
    return Unsupported("model.dropout", "BPE dropout");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = m.find(key);
    if (it != m.end() && it->is_string() && !it->get<std::string>().empty()) {
      return Unsupported(absl::StrCat("model.", key), "a non-empty subword affix");
    }
  }
  d_.byte_fallback = Bool(m, "byte_fallback", false);
  d_.fuse_unk = Bool(m, "fuse_unk", false);
  d_.ignore_merges = Bool(m, "ignore_merges", false);
  d_.merge_mode = MergeMode::kRank;

  if (!vocab_ || !vocab_->has_vocab) return Err("model.vocab", "missing or not an object");
  const auto& vocab = vocab_->vocab;
  int64_t max_id = -1;
  for (const auto& [token, id] : vocab) {
    if (id < 0 || id > (1 << 24)) {
      return Err("model.vocab", absl::StrCat("'", token, "' has no integer id in [0, 2^24]"));
    }
    max_id = std::max(max_id, id);
  }
  d_.tokens.assign(max_id + 1, "");
  d_.attrs.assign(max_id + 1, TokenAttr::kUnused);
  std::vector<bool> seen(max_id + 1, false);
  d_.token_to_id.reserve(vocab.size());
  for (const auto& [token, id64] : vocab) {
    const auto id = static_cast<int32_t>(id64);
    if (seen[id]) return Err("model.vocab", absl::StrCat("id ", id, " is used twice"));
    seen[id] = true;
    d_.tokens[id] = token;
    d_.attrs[id] = TokenAttr::kNormal;
    if (!d_.token_to_id.try_emplace(token, id).second) {
      return Err("model.vocab", absl::StrCat("'", token, "' appears twice"));
    }
  }
  if (d_.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      if (std::optional<int32_t> id = d_.Find(name)) d_.attrs[*id] = TokenAttr::kByte;
    }
  }
  if (auto u = m.find("unk_token"); u != m.end() && u->is_string()) {
    d_.unk = d_.Find(u->get<std::string>());
    if (!d_.unk)
      return Err("model.unk_token",
                 absl::StrCat("'", u->get<std::string>(), "' is not in the vocabulary"));
  }

  auto merges = m.find("merges");
  if (merges == m.end() || !merges->is_array())
    return Err("model.merges", "missing or not an array");
  d_.merges.reserve(merges->size());
  std::string joined;
  for (size_t i = 0; i < merges->size(); ++i) {
    const json& e = (*merges)[i];
    std::string a, b;
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      const size_t sp = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
      if (sp == std::string::npos)
        return Err(absl::StrCat("model.merges[", i, "]"),
                   absl::StrCat("'", s, "' is not two tokens"));
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      return Err(absl::StrCat("model.merges[", i, "]"), "neither \"a b\" nor [a, b]");
    }
    joined = a + b;
    const std::optional<int32_t> ia = d_.Find(a), ib = d_.Find(b), ir = d_.Find(joined);
    if (!ia || !ib || !ir) {
      return Err(absl::StrCat("model.merges[", i, "]"), absl::StrCat("'",
                                                                     !ia   ? a
                                                                     : !ib ? b
                                                                           : joined,
                                                                     "' is not in the vocabulary"));
    }
    d_.merges.Add(*ia, *ib, static_cast<int32_t>(i), *ir);
  }
  return absl::OkStatus();
}

absl::Status HfLoader::AddedTokens(const json& a) {
  if (!a.is_array()) return Err("added_tokens", "not an array");
  for (size_t i = 0; i < a.size(); ++i) {
    const json& t = a[i];
    const std::string where = absl::StrCat("added_tokens[", i, "]");
    auto id = t.find("id");
    auto content = t.find("content");
    if (!t.is_object() || id == t.end() || !id->is_number_integer() || content == t.end() ||
        !content->is_string()) {
      return Err(where, "needs an integer id and a string content");
    }
    const int64_t idv = id->get<int64_t>();
    if (idv < 0 || idv > (1 << 24)) return Err(where, absl::StrCat("id ", idv, " out of range"));
    AddedToken tok;
    tok.id = static_cast<int32_t>(idv);
    tok.content = content->get<std::string>();
    tok.special = Bool(t, "special", false);
    tok.lstrip = Bool(t, "lstrip", false);
    tok.rstrip = Bool(t, "rstrip", false);
    tok.single_word = Bool(t, "single_word", false);
    if (tok.id >= d_.size()) {
      d_.tokens.resize(tok.id + 1);
      d_.attrs.resize(tok.id + 1, TokenAttr::kUnused);
    }
    d_.tokens[tok.id] = tok.content;
    d_.attrs[tok.id] = tok.special ? TokenAttr::kControl : TokenAttr::kUserDefined;
    d_.token_to_id.try_emplace(tok.content, tok.id);
    d_.added.push_back(std::move(tok));
  }
  return absl::OkStatus();
}

absl::Status HfLoader::Normalizer(const json& n, absl::string_view where) {
  const std::string type = Type(n);
  NormalizerStep s;
  if (type == "Sequence") {
    auto list = n.find("normalizers");
    if (list == n.end() || !list->is_array()) return Err(where, "Sequence without normalizers");
    for (size_t i = 0; i < list->size(); ++i) {
      if (absl::Status st = Normalizer((*list)[i], absl::StrCat(where, ".normalizers[", i, "]"));
          !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    s.type = NormalizerStep::Type::kUnicode;
    s.form = type == "NFC"    ? NormalForm::kNfc
             : type == "NFD"  ? NormalForm::kNfd
             : type == "NFKC" ? NormalForm::kNfkc
                              : NormalForm::kNfkd;
  } else if (type == "Prepend") {
    auto p = n.find("prepend");
    if (p == n.end() || !p->is_string()) return Err(where, "Prepend without a string");
    s.type = NormalizerStep::Type::kPrepend;
    s.text = p->get<std::string>();
  } else if (type == "Replace") {
    auto pat = n.find("pattern");
    auto content = n.find("content");
    if (pat == n.end() || content == n.end() || !content->is_string())
      return Err(where, "Replace needs pattern and content");
    if (!pat->is_object() || !pat->contains("String") || !(*pat)["String"].is_string()) {
      return Unsupported(where, "Replace with a regex pattern");
    }
    s.type = NormalizerStep::Type::kReplace;
    s.text = (*pat)["String"].get<std::string>();
    s.replacement = content->get<std::string>();
  } else if (type == "Strip") {
    s.type = NormalizerStep::Type::kStrip;
    s.strip_left = Bool(n, "strip_left", true);
    s.strip_right = Bool(n, "strip_right", true);
  } else {
    return Unsupported(where, absl::StrCat("normalizer '", type, "'"));
  }
  d_.normalizers.push_back(std::move(s));
  return absl::OkStatus();
}

absl::StatusOr<SplitBehavior> HfLoader::Behavior(const json& j, absl::string_view where) const {
  auto b = j.find("behavior");
  const std::string v = b != j.end() && b->is_string() ? b->get<std::string>() : "Isolated";
  if (v == "Isolated") return SplitBehavior::kIsolated;
  if (v == "Removed") return SplitBehavior::kRemoved;
  if (v == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (v == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (v == "Contiguous") return SplitBehavior::kContiguous;
  return Unsupported(where, absl::StrCat("split behavior '", v, "'"));
}

absl::Status HfLoader::AddSplit(const json& pattern, SplitBehavior behavior, bool invert,
                                absl::string_view where) {
  absl::StatusOr<PreTokenizerStep> step = absl::InternalError("unset");
  if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
    step = MakeSplit(pattern["Regex"].get<std::string>(), behavior, invert);
  } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
    step = MakeSplit(pattern["String"].get<std::string>(), behavior, invert, /*literal=*/true);
  } else {
    return Err(where, "Split pattern is neither {\"Regex\": ...} nor {\"String\": ...}");
  }
  if (!step.ok()) return Err(where, step.status().message());
  d_.pre_tokenizers.push_back(*std::move(step));
  return absl::OkStatus();
}

absl::Status HfLoader::PreTokenizer(const json& p, absl::string_view where) {
  const std::string type = Type(p);
  if (type == "Sequence") {
    auto list = p.find("pretokenizers");
    if (list == p.end() || !list->is_array()) return Err(where, "Sequence without pretokenizers");
    for (size_t i = 0; i < list->size(); ++i) {
      if (absl::Status s = PreTokenizer((*list)[i], absl::StrCat(where, ".pretokenizers[", i, "]"));
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  pre_names_.push_back(type);
  if (type == "Split") {
    absl::StatusOr<SplitBehavior> b = Behavior(p, where);
    if (!b.ok()) return b.status();
    auto pat = p.find("pattern");
    if (pat == p.end()) return Err(where, "Split without pattern");
    return AddSplit(*pat, *b, Bool(p, "invert", false), where);
  }
  if (type == "ByteLevel") {
    d_.byte_level = true;
    if (Bool(p, "add_prefix_space", false)) {
      PreTokenizerStep s;
      s.type = PreTokenizerStep::Type::kByteLevelPrefix;
      d_.pre_tokenizers.push_back(std::move(s));
    }
    if (Bool(p, "use_regex", true)) {
      return AddSplit(json{{"Regex", std::string(kGpt2Pattern)}}, SplitBehavior::kIsolated, false,
                      where);
    }
    return absl::OkStatus();
  }
  if (type == "Digits") {
    const bool individual = Bool(p, "individual_digits", false);
    return AddSplit(json{{"Regex", individual ? R"(\p{N})" : R"(\p{N}+)"}},
                    SplitBehavior::kIsolated, false, where);
  }
  if (type == "Punctuation") {
    absl::StatusOr<SplitBehavior> b = Behavior(p, where);
    if (!b.ok()) return b.status();
    return AddSplit(json{{"Regex", R"([\p{P}!-/:-@\[-`{-~])"}}, *b, false, where);
  }
  if (type == "Whitespace") {
    return AddSplit(json{{"Regex", R"(\w+|[^\w\s]+)"}}, SplitBehavior::kRemoved, true, where);
  }
  if (type == "WhitespaceSplit") {
    return AddSplit(json{{"Regex", R"(\s+)"}}, SplitBehavior::kRemoved, false, where);
  }
  if (type == "Metaspace") {
    PreTokenizerStep s;
    s.type = PreTokenizerStep::Type::kMetaspace;
    if (auto r = p.find("replacement"); r != p.end() && r->is_string())
      s.replacement = r->get<std::string>();
    if (s.replacement.empty()) return Err(where, "Metaspace with an empty replacement");
    s.split = Bool(p, "split", true);
    s.prepend = Bool(p, "add_prefix_space", true) ? PreTokenizerStep::Prepend::kAlways
                                                  : PreTokenizerStep::Prepend::kNever;
    if (auto ps = p.find("prepend_scheme"); ps != p.end() && ps->is_string()) {
      const std::string v = ps->get<std::string>();
      if (v == "always") {
        s.prepend = PreTokenizerStep::Prepend::kAlways;
      } else if (v == "first") {
        s.prepend = PreTokenizerStep::Prepend::kFirst;
      } else if (v == "never") {
        s.prepend = PreTokenizerStep::Prepend::kNever;
      } else {
        return Unsupported(where, absl::StrCat("Metaspace prepend_scheme '", v, "'"));
      }
    }
    d_.pre_tokenizers.push_back(std::move(s));
    return absl::OkStatus();
  }
  return Unsupported(where, absl::StrCat("pre-tokenizer '", type, "'"));
}

absl::Status HfLoader::Decoder(const json& dec, absl::string_view where) {
  const std::string type = Type(dec);
  if (type == "Sequence") {
    auto list = dec.find("decoders");
    if (list == dec.end() || !list->is_array()) return Err(where, "Sequence without decoders");
    for (size_t i = 0; i < list->size(); ++i) {
      if (absl::Status s = Decoder((*list)[i], absl::StrCat(where, ".decoders[", i, "]"));
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    d_.byte_level = true;
  } else if (type == "Replace") {
    // Only the SentencePiece "▁" -> " " replacement is meaningful for decoding here.
    d_.decode_metaspace = true;
  } else if (type == "Metaspace") {
    d_.decode_metaspace = true;
    auto ps = dec.find("prepend_scheme");
    const bool prepends = ps != dec.end() && ps->is_string() ? ps->get<std::string>() != "never"
                                                             : Bool(dec, "add_prefix_space", true);
    d_.decode_strip_leading_space = prepends;
  } else if (type == "Strip") {
    auto start = dec.find("start");
    if (start != dec.end() && start->is_number_integer() && start->get<int64_t>() > 0) {
      d_.decode_strip_leading_space = true;
    }
  } else if (type != "ByteFallback" && type != "Fuse") {
    return Unsupported(where, absl::StrCat("decoder '", type, "'"));
  }
  return absl::OkStatus();
}

absl::Status HfLoader::PostProcessor(const json& p, absl::string_view where) {
  const std::string type = Type(p);
  if (type == "ByteLevel") return absl::OkStatus();
  if (type == "Sequence") {
    auto list = p.find("processors");
    if (list == p.end() || !list->is_array()) return Err(where, "Sequence without processors");
    for (size_t i = 0; i < list->size(); ++i) {
      if (absl::Status s = PostProcessor((*list)[i], absl::StrCat(where, ".processors[", i, "]"));
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto cls = p.find("cls");
    auto sep = p.find("sep");
    if (cls == p.end() || sep == p.end() || !cls->is_array() || cls->size() != 2 ||
        !sep->is_array() || sep->size() != 2 || !(*cls)[1].is_number_integer() ||
        !(*sep)[1].is_number_integer()) {
      return Err(where, "cls/sep must be [token, id]");
    }
    d_.prefix_ids = {(*cls)[1].get<int32_t>()};
    d_.suffix_ids = {(*sep)[1].get<int32_t>()};
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing")
    return Unsupported(where, absl::StrCat("post-processor '", type, "'"));
  auto single = p.find("single");
  auto specials = p.find("special_tokens");
  if (single == p.end() || !single->is_array())
    return Err(where, "TemplateProcessing without single");
  d_.prefix_ids.clear();
  d_.suffix_ids.clear();
  bool after = false;
  for (const json& piece : *single) {
    if (piece.contains("Sequence")) {
      if (after) return Unsupported(where, "a template with two sequences for one input");
      after = true;
      continue;
    }
    auto st = piece.find("SpecialToken");
    if (st == piece.end() || !st->contains("id") || !(*st)["id"].is_string()) {
      return Err(where, "template piece is neither Sequence nor SpecialToken");
    }
    const std::string name = (*st)["id"].get<std::string>();
    if (specials == p.end() || !specials->contains(name) || !(*specials)[name].contains("ids") ||
        !(*specials)[name]["ids"].is_array()) {
      return Err(where, absl::StrCat("special token '", name, "' has no ids"));
    }
    for (const json& id : (*specials)[name]["ids"]) {
      if (!id.is_number_integer())
        return Err(where, absl::StrCat("special token '", name, "': bad id"));
      (after ? d_.suffix_ids : d_.prefix_ids).push_back(id.get<int32_t>());
    }
  }
  return absl::OkStatus();
}

std::optional<int32_t> HfLoader::ConfigToken(const json& cfg, const char* key) const {
  auto it = cfg.find(key);
  if (it == cfg.end()) return std::nullopt;
  std::string text;
  if (it->is_string()) {
    text = it->get<std::string>();
  } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    text = (*it)["content"].get<std::string>();
  } else {
    return std::nullopt;
  }
  return d_.Find(text);
}

absl::Status HfLoader::LoadConfig(absl::string_view text, const std::string& path) {
  const json cfg = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (cfg.is_discarded() || !cfg.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a valid JSON object"));
  }
  if (auto id = ConfigToken(cfg, "bos_token")) d_.bos = id;
  if (auto id = ConfigToken(cfg, "eos_token")) d_.eos = id;
  if (auto id = ConfigToken(cfg, "pad_token")) d_.pad = id;
  if (auto id = ConfigToken(cfg, "unk_token")) d_.unk = id;
  // As transformers' Llama tokenizers do: explicit flags rebuild the BOS/EOS template.
  if (auto it = cfg.find("add_bos_token"); it != cfg.end() && it->is_boolean()) {
    d_.prefix_ids.clear();
    if (it->get<bool>() && d_.bos) d_.prefix_ids.push_back(*d_.bos);
  }
  if (auto it = cfg.find("add_eos_token"); it != cfg.end() && it->is_boolean()) {
    d_.suffix_ids.clear();
    if (it->get<bool>() && d_.eos) d_.suffix_ids.push_back(*d_.eos);
  }
  if (auto it = cfg.find("chat_template"); it != cfg.end()) {
    if (it->is_string()) {
      d_.chat_template = it->get<std::string>();
    } else if (it->is_array()) {
      for (const json& t : *it) {
        if (t.is_object() && t.value("name", "") == "default" && t.contains("template") &&
            t["template"].is_string()) {
          d_.chat_template = t["template"].get<std::string>();
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHfDir(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "tokenizer.json").string();
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  const std::string cfg_path = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  std::optional<std::string> cfg;
  std::error_code ec;
  if (std::filesystem::exists(cfg_path, ec)) {
    absl::StatusOr<std::string> cfg_text = ReadFileToString(cfg_path);
    if (!cfg_text.ok()) return cfg_text.status();
    cfg = std::move(*cfg_text);
  }
  return FromHfJson(*text, cfg, dir);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHfJson(
    const std::string& tokenizer_json, std::optional<absl::string_view> tokenizer_config,
    const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "tokenizer.json").string();
  auto d = std::make_unique<TokenizerData>();
  d->source = path;
  {
    absl::StatusOr<TokenizerJson> parsed = ParseTokenizerJson(tokenizer_json, path);
    if (!parsed.ok()) return parsed.status();
    HfLoader loader(path, *d, &*parsed);
    try {
      if (absl::Status s = loader.Load(parsed->root); !s.ok()) return s;
      if (tokenizer_config) {
        const std::string cfg = (std::filesystem::path(dir) / "tokenizer_config.json").string();
        if (absl::Status s = loader.LoadConfig(*tokenizer_config, cfg); !s.ok()) return s;
      }
    } catch (const json::exception& e) {
      // Type checks above should make this unreachable; a malformed file must still not crash.
      return absl::InvalidArgumentError(absl::StrCat(path, ": malformed: ", e.what()));
    }
  }
  // Ids added by the post-processor are the BOS/EOS when the config does not say.
  if (!d->bos && !d->prefix_ids.empty()) d->bos = d->prefix_ids.front();
  if (!d->eos && !d->suffix_ids.empty()) d->eos = d->suffix_ids.back();
  if (absl::Status s = d->Finish(); !s.ok()) return s;
  return std::make_unique<Tokenizer>(std::move(d));
}

}  // namespace tessera::tokenizer
