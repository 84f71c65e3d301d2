#include "runtime/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

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

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(absl::string_view pattern, bool literal) {
  uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  if (literal) options |= PCRE2_LITERAL;
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
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

std::vector<std::pair<size_t, size_t>> Regex::FindAll(absl::string_view subject) const {
  std::vector<std::pair<size_t, size_t>> out;
  if (subject.empty()) return out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  if (md == nullptr) return out;  // out of memory: the caller sees one unsplit piece
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
    if (rc < 0) break;  // PCRE2_ERROR_NOMATCH, or a resource limit: the rest is unmatched
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
