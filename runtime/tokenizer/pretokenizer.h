// Text normalisation and pre-tokenization steps, as Hugging Face tokenizers models them.
//
// A segment of text (the part between added/special tokens) flows through
//   normalizers (NFC, Prepend, Replace, ...)  ->  pre-tokenizers (Split, ByteLevel, ...)
// and yields "pieces"; the BPE model then encodes each piece on its own. Steps are built
// by the loaders (GGUF `tokenizer.ggml.pre` presets or tokenizer.json sections) and are
// immutable afterwards, so applying them is thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/tokenizer/regex.h"
#include "runtime/tokenizer/unicode.h"

namespace tessera::tokenizer {

struct NormalizerStep {
  enum class Type { kUnicode, kPrepend, kReplace, kStrip };
  Type type = Type::kReplace;
  NormalForm form = NormalForm::kNfc;            // kUnicode
  std::string text;                              // kPrepend: prefix; kReplace: pattern
  std::string replacement;                       // kReplace
  bool strip_left = false, strip_right = false;  // kStrip
};

// Applies `steps` in order.
absl::StatusOr<std::string> ApplyNormalizers(const std::vector<NormalizerStep>& steps,
                                             std::string text);

enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizerStep {
  enum class Type { kSplit, kByteLevelPrefix, kMetaspace };
  Type type = Type::kSplit;
  // kSplit
  std::shared_ptr<const Regex> regex;  // shared between copies of the step; immutable
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  // kMetaspace
  std::string replacement = "\xE2\x96\x81";  // U+2581 "▁"
  enum class Prepend { kAlways, kFirst, kNever };
  Prepend prepend = Prepend::kAlways;
  bool split = true;
};

// One piece of a segment during pre-tokenization. `at_text_start` says the piece begins
// at offset 0 of the caller's whole text (Metaspace's prepend_scheme "first").
struct Piece {
  std::string text;
  bool at_text_start = false;
};

// Runs `steps` over `pieces` (usually one piece: the normalised segment). Fails only when
// a regex hits a PCRE2 resource limit.
absl::StatusOr<std::vector<Piece>> ApplyPreTokenizers(const std::vector<PreTokenizerStep>& steps,
                                                      std::vector<Piece> pieces);

// Builds a kSplit step for `pattern` (a regex unless `literal`).
absl::StatusOr<PreTokenizerStep> MakeSplit(absl::string_view pattern, SplitBehavior behavior,
                                           bool invert = false, bool literal = false);

// GPT-2's pattern, which HF's ByteLevel pre-tokenizer applies when use_regex is true.
inline constexpr absl::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// The Split sequence for a GGUF `tokenizer.ggml.pre` name, the same patterns the original
// Hugging Face tokenizer.json files use (llama.cpp maps the same names). NotFound for a
// name we do not know; `ignore_merges` is set for the Llama 3 family.
absl::StatusOr<std::vector<PreTokenizerStep>> PresetForGgufPre(absl::string_view name,
                                                               bool* ignore_merges);

// Names PresetForGgufPre accepts, comma-separated, for error messages.
std::string KnownGgufPreNames();

}  // namespace tessera::tokenizer
