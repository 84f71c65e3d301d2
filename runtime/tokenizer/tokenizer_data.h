// The tables a Tokenizer runs on. Filled in by the loaders (load_gguf.cc, load_hf.cc),
// checked by Validate(), then frozen inside the Tokenizer. Internal to runtime/tokenizer.
//
// Invariants after Validate(): tokens, attrs and scores have one entry per id; every id
// stored anywhere (specials, merges, byte tables, added tokens) is in [0, vocab size).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "runtime/tokenizer/bpe.h"
#include "runtime/tokenizer/pretokenizer.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tessera::tokenizer {

// GGUF token_type values (llama.cpp's llama_token_type).
enum class TokenAttr : uint8_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

enum class MergeMode {
  kRank,   // merges table: GPT-2 / HF BPE
  kScore,  // vocab scores: SentencePiece BPE (llama.cpp "llama")
};

// A token matched verbatim in the input text before normalisation.
struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;  // needs parse_special
  bool lstrip = false, rstrip = false, single_word = false;
};

struct TokenizerData {
  std::string source;  // file name, for messages
  Kind kind = Kind::kByteLevelBpe;
  MergeMode merge_mode = MergeMode::kRank;
  std::string pre_name;

  std::vector<std::string> tokens;  // id -> vocab string
  std::vector<TokenAttr> attrs;     // id -> type
  std::vector<float> scores;        // id -> score (kScore); may be all zero otherwise
  absl::flat_hash_map<std::string, int32_t> token_to_id;
  MergeTable merges;  // kRank

  bool byte_level = false;     // bytes mapped through ByteLevelMap before the model
  bool ignore_merges = false;  // a piece that is a whole vocab token is taken as is
  bool byte_fallback = false;  // characters outside the vocab -> <0xNN> tokens
  bool fuse_unk = false;       // consecutive <unk> collapse into one
  // byte_token[b]: the id of byte b's token (byte-level char, or <0xNN>); -1 if none.
  std::array<int32_t, 256> byte_token{};

  std::vector<NormalizerStep> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizers;

  std::vector<AddedToken> added;  // matched in text, see tokenizer.h
  // Built by Finish() from `added`, for the longest-match scan in Encode.
  absl::flat_hash_map<std::string, size_t> added_by_text;  // content -> index in `added`
  std::vector<size_t> added_lengths;                       // distinct lengths, longest first
  std::array<bool, 256> added_first_byte{};

  std::vector<int32_t> prefix_ids, suffix_ids;  // added by EncodeOptions::add_special
  std::optional<int32_t> bos, eos, eot, pad, unk;
  std::string chat_template;

  // Decoding: SentencePiece "▁" -> " ", and the one leading space to drop.
  bool decode_metaspace = false;
  bool decode_strip_leading_space = false;

  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
  bool InRange(int64_t id) const { return id >= 0 && id < size(); }
  // The id of `text` if it is in the vocabulary.
  std::optional<int32_t> Find(absl::string_view text) const {
    auto it = token_to_id.find(text);
    if (it == token_to_id.end()) return std::nullopt;
    return it->second;
  }

  // Fills token_to_id (if empty), byte_token, the added-token tables and eot (if unset);
  // checks every invariant. Errors name `source`.
  absl::Status Finish();
};

}  // namespace tessera::tokenizer
