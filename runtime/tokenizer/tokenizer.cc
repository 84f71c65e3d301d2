// Tokenizer: encoding and decoding over a validated TokenizerData.
#include "runtime/tokenizer/tokenizer.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/tokenizer/tokenizer_data.h"
#include "runtime/tokenizer/unicode.h"

namespace tessera::tokenizer {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Letters, digits, '_' and any non-ASCII byte count as word characters for single_word.
bool IsWordByte(char c) {
  const auto u = static_cast<uint8_t>(c);
  return u >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         c == '_';
}

// "<0x0A>" -> 0x0A; -1 if `t` is not a byte token name.
int ParseByteToken(absl::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (char c : t.substr(3, 2)) {
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= c - '0';
    } else if (c >= 'A' && c <= 'F') {
      v |= c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      v |= c - 'a' + 10;
    } else {
      return -1;
    }
  }
  return v;
}

struct Fragment {
  bool is_token;
  int32_t id;
  size_t begin, end;  // text fragments: [begin, end) of the input
};

// Splits `text` on added tokens: leftmost match, longest at that position.
std::vector<Fragment> SplitOnAdded(const TokenizerData& d, absl::string_view text,
                                   const EncodeOptions& opts) {
  std::vector<Fragment> out;
  const size_t n = text.size();
  size_t seg = 0, pos = 0;
  // Whether a special token at [b, e) may be read: parse_special, and inside one of
  // special_ranges when those are given. Positions only grow, so one cursor suffices.
  size_t range = 0;
  auto special_allowed = [&](size_t b, size_t e) {
    if (!opts.parse_special) return false;
    const auto& ranges = opts.special_ranges;
    if (ranges.empty()) return true;
    while (range < ranges.size() && ranges[range].second <= b) ++range;
    return range < ranges.size() && ranges[range].first <= b && e <= ranges[range].second;
  };
  while (pos < n) {
    const AddedToken* hit = nullptr;
    if (d.added_first_byte[static_cast<uint8_t>(text[pos])]) {
      for (size_t len : d.added_lengths) {
        if (pos + len > n) continue;
        auto it = d.added_by_text.find(text.substr(pos, len));
        if (it == d.added_by_text.end()) continue;
        const AddedToken& a = d.added[it->second];
        if (a.special && !special_allowed(pos, pos + len)) continue;
        if (a.single_word && ((pos > 0 && IsWordByte(text[pos - 1])) ||
                              (pos + len < n && IsWordByte(text[pos + len])))) {
          continue;
        }
        hit = &a;
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    size_t seg_end = pos;
    if (hit->lstrip) {
      while (seg_end > seg && IsSpace(text[seg_end - 1])) --seg_end;
    }
    if (seg_end > seg) out.push_back({false, -1, seg, seg_end});
    out.push_back({true, hit->id, pos, pos + hit->content.size()});
    pos += hit->content.size();
    if (hit->rstrip) {
      while (pos < n && IsSpace(text[pos])) ++pos;
    }
    seg = pos;
  }
  if (seg < n) out.push_back({false, -1, seg, n});
  return out;
}

}  // namespace

absl::Status TokenizerData::Finish() {
  const size_t n = tokens.size();
  if (n == 0) return absl::InvalidArgumentError(absl::StrCat(source, ": empty vocabulary"));
  if (n > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": vocabulary too large"));
  }
  if (attrs.empty()) attrs.assign(n, TokenAttr::kNormal);
  if (scores.empty()) scores.assign(n, 0.f);
  if (attrs.size() != n || scores.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", n, " tokens but ", attrs.size(),
                                                   " token types and ", scores.size(), " scores"));
  }
  if (token_to_id.empty()) {
    token_to_id.reserve(n);
    // Later duplicates win, as in llama.cpp.
    for (size_t i = 0; i < n; ++i) token_to_id[tokens[i]] = static_cast<int32_t>(i);
  }
  const ByteLevelMap& blm = ByteLevelMap::Get();
  for (int b = 0; b < 256; ++b) {
    const std::optional<int32_t> id = byte_level ? Find(blm.Encode(static_cast<uint8_t>(b)))
                                                 : Find(absl::StrFormat("<0x%02X>", b));
    byte_token[b] = id.value_or(-1);
  }

  auto check_id = [&](const std::optional<int32_t>& id, absl::string_view what) -> absl::Status {
    if (id && !InRange(*id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": ", what, " id ", *id, " is outside the vocabulary (", n, " tokens)"));
    }
    return absl::OkStatus();
  };
  for (const auto& [id, what] :
       {std::pair{bos, "BOS"}, std::pair{eos, "EOS"}, std::pair{eot, "end-of-turn"},
        std::pair{pad, "padding"}, std::pair{unk, "unknown-token"}}) {
    if (absl::Status s = check_id(id, what); !s.ok()) return s;
  }
  for (int32_t id : prefix_ids) {
    if (absl::Status s = check_id(id, "post-processor"); !s.ok()) return s;
  }
  for (int32_t id : suffix_ids) {
    if (absl::Status s = check_id(id, "post-processor"); !s.ok()) return s;
  }

  added_by_text.clear();
  added_lengths.clear();
  added_first_byte.fill(false);
  for (size_t i = 0; i < added.size(); ++i) {
    const AddedToken& a = added[i];
    if (absl::Status s = check_id(a.id, absl::StrCat("added token '", a.content, "'")); !s.ok()) {
      return s;
    }
    if (a.content.empty()) continue;
    added_by_text.try_emplace(a.content, i);
    added_first_byte[static_cast<uint8_t>(a.content[0])] = true;
    added_lengths.push_back(a.content.size());
  }
  std::sort(added_lengths.begin(), added_lengths.end(), std::greater<>());
  added_lengths.erase(std::unique(added_lengths.begin(), added_lengths.end()), added_lengths.end());

  if (!eot) {
    for (absl::string_view name : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                   "<|end_of_turn|>", "<EOT>", "<|endoftext|>"}) {
      if (std::optional<int32_t> id = Find(name)) {
        eot = id;
        break;
      }
    }
  }
  return absl::OkStatus();
}

Tokenizer::Tokenizer(std::unique_ptr<const TokenizerData> data) : d_(std::move(data)) {}
Tokenizer::~Tokenizer() = default;

Kind Tokenizer::kind() const { return d_->kind; }
int32_t Tokenizer::vocab_size() const { return d_->size(); }
std::optional<int32_t> Tokenizer::bos_id() const { return d_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return d_->eos; }
std::optional<int32_t> Tokenizer::eot_id() const { return d_->eot; }
std::optional<int32_t> Tokenizer::pad_id() const { return d_->pad; }
std::optional<int32_t> Tokenizer::unk_id() const { return d_->unk; }
bool Tokenizer::add_bos() const { return !d_->prefix_ids.empty(); }
bool Tokenizer::add_eos() const { return !d_->suffix_ids.empty(); }
const std::string& Tokenizer::chat_template() const { return d_->chat_template; }
absl::string_view Tokenizer::pre_tokenizer_name() const { return d_->pre_name; }

absl::string_view Tokenizer::TokenText(int32_t id) const {
  return d_->InRange(id) ? absl::string_view(d_->tokens[id]) : absl::string_view();
}

bool Tokenizer::IsSpecial(int32_t id) const {
  if (!d_->InRange(id)) return false;
  const TokenAttr a = d_->attrs[id];
  return a == TokenAttr::kControl || a == TokenAttr::kUnknown;
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(absl::string_view text,
                                                       const EncodeOptions& opts) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (opts.add_special) out = d_->prefix_ids;
  for (const Fragment& f : SplitOnAdded(*d_, text, opts)) {
    if (f.is_token) {
      out.push_back(f.id);
    } else if (absl::Status s = EncodeSegment(text.substr(f.begin, f.end - f.begin),
                                              f.begin == 0, out);
               !s.ok()) {
      return s;
    }
  }
  if (opts.add_special) out.insert(out.end(), d_->suffix_ids.begin(), d_->suffix_ids.end());
  return out;
}

absl::Status Tokenizer::EncodeSegment(absl::string_view text, bool at_text_start,
                                      std::vector<int32_t>& out) const {
  absl::StatusOr<std::string> normalized =
      ApplyNormalizers(d_->normalizers, std::string(text));
  if (!normalized.ok()) {
    return absl::Status(normalized.status().code(),
                        absl::StrCat(d_->source, ": normalising the text failed: ",
                                     normalized.status().message()));
  }
  if (d_->pre_tokenizers.empty()) {
    EncodePiece(*normalized, out);
    return absl::OkStatus();
  }
  std::vector<Piece> pieces;
  pieces.push_back({*std::move(normalized), at_text_start});
  absl::StatusOr<std::vector<Piece>> split =
      ApplyPreTokenizers(d_->pre_tokenizers, std::move(pieces));
  if (!split.ok()) {
    return absl::Status(split.status().code(), absl::StrCat(d_->source, ": pre-tokenizer: ",
                                                            split.status().message()));
  }
  for (const Piece& p : *split) EncodePiece(p.text, out);
  return absl::OkStatus();
}

void Tokenizer::EncodePiece(absl::string_view piece, std::vector<int32_t>& out) const {
  const TokenizerData& d = *d_;
  if (piece.empty()) return;

  if (d.merge_mode == MergeMode::kScore) {
    auto mergeable = [&d](absl::string_view s) -> std::optional<int32_t> {
      std::optional<int32_t> id = d.Find(s);
      if (!id) return std::nullopt;
      switch (d.attrs[*id]) {
        case TokenAttr::kUndefined:
        case TokenAttr::kNormal:
        case TokenAttr::kUserDefined:
          return id;
        case TokenAttr::kUnknown:
        case TokenAttr::kControl:
        case TokenAttr::kUnused:
        case TokenAttr::kByte:
          return std::nullopt;
      }
      return std::nullopt;
    };
    for (const auto& [off, len] : SpmMergeByScore(piece, mergeable, d.scores)) {
      if (std::optional<int32_t> id = mergeable(piece.substr(off, len))) {
        out.push_back(*id);
        continue;
      }
      for (size_t k = off; k < off + len; ++k) {
        const int32_t b = d.byte_token[static_cast<uint8_t>(piece[k])];
        if (b >= 0) {
          out.push_back(b);
        } else if (d.unk) {
          out.push_back(*d.unk);
        }
      }
    }
    return;
  }

  std::string mapped;
  absl::string_view word = piece;
  if (d.byte_level) {
    mapped.reserve(piece.size() * 2);
    ByteLevelMap::Get().EncodeBytes(piece, mapped);
    word = mapped;
  }
  if (d.ignore_merges) {
    if (std::optional<int32_t> id = d.Find(word)) {
      out.push_back(*id);
      return;
    }
  }

  std::vector<int32_t> syms;
  syms.reserve(piece.size());
  if (d.byte_level) {
    for (char c : piece) {
      const int32_t id = d.byte_token[static_cast<uint8_t>(c)];
      if (id >= 0) syms.push_back(id);  // a vocab without this byte drops it, as HF does
    }
  } else {
    bool prev_unk = false;
    for (size_t i = 0; i < word.size();) {
      const size_t len = Utf8CharLen(word, i);
      const absl::string_view ch = word.substr(i, len);
      i += len;
      if (std::optional<int32_t> id = d.Find(ch)) {
        syms.push_back(*id);
        prev_unk = false;
        continue;
      }
      if (d.byte_fallback) {
        bool all = true;
        for (char c : ch) all &= d.byte_token[static_cast<uint8_t>(c)] >= 0;
        if (all) {
          for (char c : ch) syms.push_back(d.byte_token[static_cast<uint8_t>(c)]);
          prev_unk = false;
          continue;
        }
      }
      if (!d.unk) continue;  // no <unk>: the character is dropped, as HF does
      if (!(d.fuse_unk && prev_unk)) syms.push_back(*d.unk);
      prev_unk = true;
    }
  }
  BpeMergeByRank(d.merges, syms);
  out.insert(out.end(), syms.begin(), syms.end());
}

std::string Tokenizer::TokenBytes(int32_t id) const {
  const TokenizerData& d = *d_;
  if (!d.InRange(id)) return "";
  const std::string& t = d.tokens[id];
  switch (d.attrs[id]) {
    case TokenAttr::kControl:
    case TokenAttr::kUnknown:
      return t;
    case TokenAttr::kUserDefined:
      if (d.byte_level) return t;
      break;
    case TokenAttr::kByte: {
      const int b = ParseByteToken(t);
      if (b >= 0) return std::string(1, static_cast<char>(b));
      break;
    }
    case TokenAttr::kUndefined:
    case TokenAttr::kNormal:
    case TokenAttr::kUnused:
      break;
  }
  if (d.byte_level) {
    std::string out;
    // A token made of characters outside the byte map stands for its own text (HF).
    if (!ByteLevelMap::Get().DecodeText(t, out)) return t;
    return out;
  }
  if (!d.decode_metaspace) return t;
  std::string out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size();) {
    if (t.compare(i, 3, "\xE2\x96\x81") == 0) {
      out += ' ';
      i += 3;
    } else {
      out += t[i++];
    }
  }
  return out;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (!d_->InRange(id) || (skip_special && IsSpecial(id))) continue;
    out += TokenBytes(id);
  }
  if (d_->decode_strip_leading_space && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace tessera::tokenizer
