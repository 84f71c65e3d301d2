// IncrementalDecoder: streaming detokenization that never splits a UTF-8 character.
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/tokenizer_data.h"
#include "runtime/tokenizer/unicode.h"

namespace tessera::tokenizer {

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tok, bool skip_special)
    : tok_(tok), skip_special_(skip_special) {}

std::string IncrementalDecoder::Push(int32_t id) {
  if (skip_special_ && tok_.IsSpecial(id)) return "";
  std::string bytes = tok_.TokenBytes(id);
  if (bytes.empty()) return "";
  // Decode() drops the one leading space a SentencePiece vocabulary prepends.
  if (at_start_ && tok_.data().decode_strip_leading_space && bytes[0] == ' ') bytes.erase(0, 1);
  at_start_ = false;
  pending_ += bytes;
  const size_t hold = IncompleteUtf8Tail(pending_);
  std::string out = SanitizeUtf8(absl::string_view(pending_).substr(0, pending_.size() - hold));
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string IncrementalDecoder::Flush() {
  std::string out = SanitizeUtf8(pending_);
  pending_.clear();
  at_start_ = true;
  return out;
}

}  // namespace tessera::tokenizer
