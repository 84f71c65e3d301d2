// UTF-8 helpers for the tokenizer: decoding that never fails on bad bytes, the GPT-2
// byte<->unicode table used by byte-level BPE, and Unicode normalisation (NFC etc.) via ICU.
//
// Every function here accepts arbitrary bytes. Invalid UTF-8 is handled byte by byte
// (an invalid byte is a one-byte "character"), never asserted on. Stateless and
// thread-safe; the byte table is built once on first use.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tessera::tokenizer {

// Length in bytes of the UTF-8 character starting at s[i]: 1..4 for a well-formed
// sequence that fits in s, 1 for an invalid or truncated one (so callers always advance).
size_t Utf8CharLen(absl::string_view s, size_t i);

// True if `s` is entirely well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
bool IsValidUtf8(absl::string_view s);

// Appends the UTF-8 encoding of code point `cp` (must be <= 0x10FFFF, not a surrogate).
void AppendUtf8(uint32_t cp, std::string& out);

// Number of bytes at the end of `s` that form the start of a well-formed but incomplete
// UTF-8 sequence (0..3): what a streaming decoder must hold back.
size_t IncompleteUtf8Tail(absl::string_view s);

// Copies `s`, replacing every ill-formed byte sequence with U+FFFD (one per maximal
// ill-formed subpart, as the Unicode standard and Python's errors="replace" do).
std::string SanitizeUtf8(absl::string_view s);

// GPT-2's reversible byte -> printable code point map (bytes.decode in byte-level BPE).
class ByteLevelMap {
 public:
  static const ByteLevelMap& Get();

  // UTF-8 text of the code point that stands for byte b ("Ġ" for ' ').
  const std::string& Encode(uint8_t b) const { return byte_to_utf8_[b]; }
  // Maps every byte of `bytes` to its code point and appends the UTF-8 to `out`.
  void EncodeBytes(absl::string_view bytes, std::string& out) const;
  // Inverse of EncodeBytes: false (and `out` unchanged) if any character of `text` is not
  // one of the 256 byte code points, e.g. "<|im_start|>" is fine, "Ġ│" is not.
  bool DecodeText(absl::string_view text, std::string& out) const;

 private:
  ByteLevelMap();
  std::array<std::string, 256> byte_to_utf8_;
  std::array<int16_t, 324> cp_to_byte_;  // all mapped code points are < 324
};

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };

// Normalises valid UTF-8 text with ICU. Text that is not valid UTF-8 is returned
// unchanged (ICU would replace the bad bytes, which would lose them).
absl::StatusOr<std::string> Normalize(absl::string_view text, NormalForm form);

}  // namespace tessera::tokenizer
