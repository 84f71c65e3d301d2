// A compiled PCRE2 pattern for pre-tokenizer splitting.
//
// Patterns are compiled with PCRE2_UTF | PCRE2_UCP (so \s, \p{L}, \w are Unicode-aware,
// as in the Oniguruma engine Hugging Face tokenizers uses) and PCRE2_MATCH_INVALID_UTF,
// so subjects with invalid UTF-8 are matched safely: bad bytes are simply never part of a
// match. JIT-compiled when the library supports it.
//
// Thread-safe: FindAll allocates its own match data, so one Regex can serve concurrent
// Encode calls. Move-only.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tessera::tokenizer {

// `text` with every ASCII punctuation character backslash-escaped: a PCRE2 pattern that
// matches exactly `text`.
std::string EscapeLiteral(absl::string_view text);

class Regex {
 public:
  // `literal` matches `pattern` as a plain string (HF's {"String": ...} split patterns);
  // it is escaped into a regex, since PCRE2 refuses PCRE2_LITERAL with PCRE2_UCP.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(absl::string_view pattern,
                                                        bool literal = false);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches in `subject`, left to right, as [begin, end) byte offsets.
  // An empty match advances by one character, as Hugging Face's find_iter does.
  // ResourceExhausted when PCRE2 hits a match/depth/heap limit: never a partial result.
  absl::StatusOr<std::vector<std::pair<size_t, size_t>>> FindAll(absl::string_view subject) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  struct Code;
  // Immutable after construction.
  std::string pattern_;
  Code* code_ = nullptr;
};

}  // namespace tessera::tokenizer
