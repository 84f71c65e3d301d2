#include "runtime/tokenizer/unicode.h"

#include <climits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "unicode/errorcode.h"
#include "unicode/normalizer2.h"
#include "unicode/unistr.h"

namespace tessera::tokenizer {
namespace {

// For the sequence starting at s[i]: `need` is the full length its lead byte announces
// (0 if s[i] cannot start a sequence), `have` how many bytes from i are a well-formed
// prefix of it (Unicode Table 3-7, so overlongs and surrogates stop early).
struct SeqInfo {
  size_t need;
  size_t have;
};

SeqInfo Inspect(absl::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return {1, 1};
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {0, 0};
  }
  size_t have = 1;
  for (size_t k = 1; k < need && i + k < s.size(); ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    const uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) break;
    ++have;
  }
  return {need, have};
}

}  // namespace

size_t Utf8CharLen(absl::string_view s, size_t i) {
  const SeqInfo info = Inspect(s, i);
  return info.need != 0 && info.have == info.need ? info.need : 1;
}

bool IsValidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const SeqInfo info = Inspect(s, i);
    if (info.need == 0 || info.have != info.need) return false;
    i += info.need;
  }
  return true;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

size_t IncompleteUtf8Tail(absl::string_view s) {
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const size_t i = n - back;
    const auto b = static_cast<uint8_t>(s[i]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const SeqInfo info = Inspect(s, i);
    // A lead byte whose sequence is well-formed so far but runs past the end.
    if (info.need > back && info.have == back) return back;
    return 0;
  }
  return 0;
}

std::string SanitizeUtf8(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const SeqInfo info = Inspect(s, i);
    if (info.need != 0 && info.have == info.need) {
      out.append(s.data() + i, info.need);
      i += info.need;
    } else {
      out += "\xEF\xBF\xBD";
      i += info.have == 0 ? 1 : info.have;
    }
  }
  return out;
}

ByteLevelMap::ByteLevelMap() {
  cp_to_byte_.fill(-1);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const int cp = printable ? b : next++;
    AppendUtf8(static_cast<uint32_t>(cp), byte_to_utf8_[b]);
    cp_to_byte_[cp] = static_cast<int16_t>(b);
  }
}

const ByteLevelMap& ByteLevelMap::Get() {
  static const ByteLevelMap* map = new ByteLevelMap();
  return *map;
}

void ByteLevelMap::EncodeBytes(absl::string_view bytes, std::string& out) const {
  for (char c : bytes) out += byte_to_utf8_[static_cast<uint8_t>(c)];
}

bool ByteLevelMap::DecodeText(absl::string_view text, std::string& out) const {
  std::string bytes;
  bytes.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto b0 = static_cast<uint8_t>(text[i]);
    uint32_t cp;
    if (b0 < 0x80) {
      cp = b0;
      i += 1;
    } else if ((b0 & 0xE0) == 0xC0 && i + 1 < text.size()) {
      cp = ((b0 & 0x1Fu) << 6) | (static_cast<uint8_t>(text[i + 1]) & 0x3Fu);
      i += 2;
    } else {
      return false;  // all mapped code points are < 0x800
    }
    if (cp >= cp_to_byte_.size() || cp_to_byte_[cp] < 0) return false;
    bytes += static_cast<char>(cp_to_byte_[cp]);
  }
  out += bytes;
  return true;
}

absl::StatusOr<std::string> Normalize(absl::string_view text, NormalForm form) {
  if (text.empty() || !IsValidUtf8(text)) return std::string(text);
  if (text.size() > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError("text over 2 GiB cannot be normalised");
  }
  bool ascii = true;
  for (char c : text) ascii &= static_cast<uint8_t>(c) < 0x80;
  if (ascii) return std::string(text);  // ASCII is invariant under all four forms

  icu::ErrorCode err;
  const icu::Normalizer2* norm = nullptr;
  switch (form) {
    case NormalForm::kNfc:
      norm = icu::Normalizer2::getNFCInstance(err);
      break;
    case NormalForm::kNfd:
      norm = icu::Normalizer2::getNFDInstance(err);
      break;
    case NormalForm::kNfkc:
      norm = icu::Normalizer2::getNFKCInstance(err);
      break;
    case NormalForm::kNfkd:
      norm = icu::Normalizer2::getNFKDInstance(err);
      break;
  }
  if (err.isFailure() || norm == nullptr) {
    return absl::InternalError(absl::StrCat("ICU normalizer unavailable: ", err.errorName()));
  }
  const icu::UnicodeString src = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  icu::UnicodeString dst = norm->normalize(src, err);
  if (err.isFailure()) {
    return absl::InternalError(absl::StrCat("ICU normalisation failed: ", err.errorName()));
  }
  std::string out;
  dst.toUTF8String(out);
  return out;
}

}  // namespace tessera::tokenizer
