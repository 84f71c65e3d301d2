#include "runtime/tokenizer/pretokenizer.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace tessera::tokenizer {
namespace {

struct Span {
  size_t begin, end;
  bool is_match;
};

// The match / gap spans that cover `text`, with Split's `invert` applied.
absl::StatusOr<std::vector<Span>> MatchSpans(const Regex& re, absl::string_view text,
                                             bool invert) {
  absl::StatusOr<std::vector<std::pair<size_t, size_t>>> matches = re.FindAll(text);
  if (!matches.ok()) return matches.status();
  std::vector<Span> spans;
  size_t pos = 0;
  for (const auto& [b, e] : *matches) {
    if (b > pos) spans.push_back({pos, b, invert});
    spans.push_back({b, e, !invert});
    pos = e;
  }
  if (pos < text.size()) spans.push_back({pos, text.size(), invert});
  return spans;
}

// Hugging Face's SplitDelimiterBehavior applied to `spans`; returns [begin, end) ranges.
std::vector<std::pair<size_t, size_t>> ApplyBehavior(const std::vector<Span>& spans,
                                                     SplitBehavior behavior) {
  std::vector<std::pair<size_t, size_t>> out;
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) out.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) out.emplace_back(s.begin, s.end);
      }
      break;
    case SplitBehavior::kContiguous:
      for (const Span& s : spans) {
        if (s.is_match && prev_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.begin, s.end);
        }
        prev_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !prev_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.begin, s.end);
        }
        prev_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !prev_match && !out.empty()) {
          out.back().first = it->begin;
        } else {
          out.emplace_back(it->begin, it->end);
        }
        prev_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  return out;
}

absl::Status SplitPieces(const PreTokenizerStep& step, std::vector<Piece>& pieces) {
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (Piece& p : pieces) {
    absl::StatusOr<std::vector<Span>> spans = MatchSpans(*step.regex, p.text, step.invert);
    if (!spans.ok()) return spans.status();
    for (const auto& [b, e] : ApplyBehavior(*spans, step.behavior)) {
      if (e > b) out.push_back({p.text.substr(b, e - b), p.at_text_start && b == 0});
    }
  }
  pieces = std::move(out);
  return absl::OkStatus();
}

void Metaspace(const PreTokenizerStep& step, std::vector<Piece>& pieces) {
  std::vector<Piece> out;
  const std::string& rep = step.replacement;
  for (Piece& p : pieces) {
    std::string t = absl::StrReplaceAll(p.text, {{" ", rep}});
    const bool starts = t.compare(0, rep.size(), rep) == 0;
    bool prepend = false;
    switch (step.prepend) {
      case PreTokenizerStep::Prepend::kAlways:
        prepend = !starts;
        break;
      case PreTokenizerStep::Prepend::kFirst:
        prepend = !starts && p.at_text_start;
        break;
      case PreTokenizerStep::Prepend::kNever:
        break;
    }
    if (prepend) t = rep + t;
    if (!step.split) {
      out.push_back({std::move(t), p.at_text_start});
      continue;
    }
    // MergedWithNext on the replacement character: "▁a▁b" -> "▁a", "▁b".
    size_t start = 0;
    for (size_t pos = t.find(rep, rep.size()); pos != std::string::npos;
         pos = t.find(rep, pos + rep.size())) {
      if (pos > start) out.push_back({t.substr(start, pos - start), p.at_text_start && start == 0});
      start = pos;
    }
    if (start < t.size()) out.push_back({t.substr(start), p.at_text_start && start == 0});
  }
  pieces = std::move(out);
}

}  // namespace

absl::StatusOr<std::string> ApplyNormalizers(const std::vector<NormalizerStep>& steps,
                                             std::string text) {
  for (const NormalizerStep& s : steps) {
    switch (s.type) {
      case NormalizerStep::Type::kUnicode: {
        absl::StatusOr<std::string> n = Normalize(text, s.form);
        if (!n.ok()) return n.status();
        text = *std::move(n);
        break;
      }
      case NormalizerStep::Type::kPrepend:
        if (!text.empty()) text = s.text + text;
        break;
      case NormalizerStep::Type::kReplace:
        if (!s.text.empty()) text = absl::StrReplaceAll(text, {{s.text, s.replacement}});
        break;
      case NormalizerStep::Type::kStrip: {
        auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
        size_t b = 0, e = text.size();
        if (s.strip_left) {
          while (b < e && ws(text[b])) ++b;
        }
        if (s.strip_right) {
          while (e > b && ws(text[e - 1])) --e;
        }
        text = text.substr(b, e - b);
        break;
      }
    }
  }
  return text;
}

absl::StatusOr<std::vector<Piece>> ApplyPreTokenizers(const std::vector<PreTokenizerStep>& steps,
                                                      std::vector<Piece> pieces) {
  for (const PreTokenizerStep& step : steps) {
    switch (step.type) {
      case PreTokenizerStep::Type::kSplit:
        if (absl::Status s = SplitPieces(step, pieces); !s.ok()) return s;
        break;
      case PreTokenizerStep::Type::kByteLevelPrefix:
        for (Piece& p : pieces) {
          if (p.text.empty() || p.text[0] != ' ') p.text = absl::StrCat(" ", p.text);
        }
        break;
      case PreTokenizerStep::Type::kMetaspace:
        Metaspace(step, pieces);
        break;
    }
  }
  return pieces;
}

absl::StatusOr<PreTokenizerStep> MakeSplit(absl::string_view pattern, SplitBehavior behavior,
                                           bool invert, bool literal) {
  absl::StatusOr<std::unique_ptr<Regex>> re = Regex::Compile(pattern, literal);
  if (!re.ok()) return re.status();
  PreTokenizerStep step;
  step.type = PreTokenizerStep::Type::kSplit;
  step.regex = std::shared_ptr<const Regex>(*std::move(re));
  step.behavior = behavior;
  step.invert = invert;
  return step;
}

namespace {

// Patterns from the tokenizer.json files of the models each llama.cpp pre-tokenizer name
// stands for. Each list is a Sequence of Split(Isolated) steps.
constexpr absl::string_view kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr absl::string_view kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen3.5 also keeps combining marks (\p{M}) inside words.
constexpr absl::string_view kQwen35 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}|)"
    R"( ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Character classes spelled with \x{} escapes: literal Greek and letterlike symbols in
// source would be silently NFC-normalised by editors (U+1FD3 -> U+0390), breaking ranges.
constexpr absl::string_view kCjk = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
// DeepSeek LLM: an optional space and a run of cased letters (Unicode Lu/Ll/Lt).
constexpr absl::string_view kDeepseekLlmLetters =
    R"(\s?[\x{41}-\x{5A}\x{61}-\x{7A}\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-)"
    R"(\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}-\x{377}\x{37B}-\x{37D})"
    R"(\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481})"
    R"(\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD})"
    R"(\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})"
    R"(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57})"
    R"(\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE})"
    R"(\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC})"
    R"(\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-)"
    R"(\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-)"
    R"(\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}-\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}-\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F})"
    R"(\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17})"
    R"(\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-)"
    R"(\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
constexpr absl::string_view kDeepseekLlmPunct =
    R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";

struct Preset {
  std::vector<absl::string_view> names;
  std::vector<absl::string_view> patterns;
  bool ignore_merges = false;
};

const std::vector<Preset>& Presets() {
  static const auto* presets = new std::vector<Preset>{
      {{"llama3", "llama-v3", "llama-bpe", "falcon3"}, {kLlama3}, true},
      {{"dbrx", "smaug-bpe"}, {kLlama3}, false},
      {{"qwen2", "stablelm2", "megrez"}, {kQwen2}, false},
      {{"qwen35"}, {kQwen35}, false},
      {{"gpt-2", "mpt", "olmo", "jais"}, {kGpt2Pattern}, false},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone"},
       {R"(\p{N})", kGpt2Pattern},
       false},
      {{"deepseek-llm"},
       {R"([\r\n])", kDeepseekLlmLetters, kDeepseekLlmPunct, R"(\s+$)", kCjk, R"(\p{N}+)"},
       false},
      {{"deepseek-coder"}, {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kCjk, R"(\p{N})"}, false},
      {{"falcon"}, {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2Pattern, R"([0-9][0-9][0-9])"}, false},
      // llama.cpp's fallback when a GGUF has no usable pre-tokenizer name.
      {{"default"},
       {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2Pattern, R"(\p{N}+)", R"([0-9][0-9][0-9])"},
       false},
  };
  return *presets;
}

}  // namespace

absl::StatusOr<std::vector<PreTokenizerStep>> PresetForGgufPre(absl::string_view name,
                                                               bool* ignore_merges) {
  for (const Preset& p : Presets()) {
    if (std::find(p.names.begin(), p.names.end(), name) == p.names.end()) continue;
    std::vector<PreTokenizerStep> steps;
    for (absl::string_view pattern : p.patterns) {
      absl::StatusOr<PreTokenizerStep> s = MakeSplit(pattern, SplitBehavior::kIsolated);
      if (!s.ok()) return s.status();
      steps.push_back(*std::move(s));
    }
    *ignore_merges = p.ignore_merges;
    return steps;
  }
  return absl::NotFoundError(absl::StrCat("unknown pre-tokenizer '", name, "'"));
}

std::string KnownGgufPreNames() {
  std::vector<absl::string_view> names;
  for (const Preset& p : Presets()) names.insert(names.end(), p.names.begin(), p.names.end());
  return absl::StrJoin(names, ", ");
}

}  // namespace tessera::tokenizer
