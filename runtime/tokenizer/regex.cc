#include "runtime/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>

#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/unicode.h"

namespace tessera::tokenizer {

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
};

Regex::~Regex() {
  if (code_ != nullptr) {
    pcre2_code_free(code_->code);
    delete code_;
  }
}

std::string EscapeLiteral(absl::string_view text) {
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) {
    const auto u = static_cast<uint8_t>(c);
    // A backslash before any ASCII character that is not a letter or digit makes it
    // literal in PCRE2; letters, digits and non-ASCII bytes are literal as they are.
    // NUL is written as \x00 (a pattern may hold it, but \<NUL> is not an escape).
    if (u == 0) {
      out += "\\x00";
    } else if (u < 0x80 && !std::isalnum(u)) {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(absl::string_view pattern, bool literal) {
  // PCRE2 refuses PCRE2_LITERAL together with PCRE2_UCP, so a literal becomes an
  // escaped pattern instead.
  const std::string source = literal ? EscapeLiteral(pattern) : std::string(pattern);
  const uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(),
                                   options, &err, &err_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return absl::InvalidArgumentError(absl::StrCat("regex /", pattern,
                                                   "/ does not compile at offset ", err_offset,
                                                   ": ", reinterpret_cast<const char*>(msg)));
  }
  auto re = std::unique_ptr<Regex>(new Regex());
  re->pattern_ = std::string(pattern);
  re->code_ = new Code{code, false};
  // JIT is an optimisation only; the interpreter gives the same matches.
  re->code_->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return re;
}

absl::StatusOr<std::vector<std::pair<size_t, size_t>>> Regex::FindAll(
    absl::string_view subject) const {
  std::vector<std::pair<size_t, size_t>> out;
  if (subject.empty()) return out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  if (md == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("regex /", pattern_, "/: out of memory for match data"));
  }
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t pos = 0;
  while (pos <= subject.size()) {
    int rc = code_->jit ? pcre2_jit_match(code_->code, s, subject.size(), pos, 0, md, nullptr)
                        : pcre2_match(code_->code, s, subject.size(), pos, 0, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // A very long run (say 1 MB of spaces) can exhaust the 32 KiB JIT stack; the
      // interpreter keeps its backtracking state on the heap and gives the same match.
      rc = pcre2_match(code_->code, s, subject.size(), pos, PCRE2_NO_JIT, md, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      // A match or depth limit, or memory: splitting the rest differently would silently
      // change the tokens, so the text is refused instead.
      pcre2_match_data_free(md);
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof(msg));
      return absl::ResourceExhaustedError(absl::StrCat(
          "regex /", pattern_, "/ failed at byte ", pos, " of a ", subject.size(),
          "-byte text: ", reinterpret_cast<const char*>(msg)));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e < b || e > subject.size()) break;  // \K tricks; cannot happen with our patterns
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {
      // Empty match: step over one character so the scan always progresses.
      if (b >= subject.size()) break;
      pos = b + Utf8CharLen(subject, b);
    }
  }
  pcre2_match_data_free(md);
  return out;
}

}  // namespace tessera::tokenizer
