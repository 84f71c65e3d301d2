// The two merge engines behind Tokenizer::Encode.
//
//  * Rank BPE (GPT-2 / Hugging Face "BPE" model): symbols are token ids; the adjacent pair
//    with the lowest merge rank is merged first, leftmost on ties. A min-heap over a linked
//    list of symbols makes a word of n symbols cost O(n log n).
//  * Score BPE (SentencePiece / llama.cpp "SPM"): symbols are byte spans of the text; the
//    adjacent pair whose concatenation is a vocab token with the highest score is merged
//    first, leftmost on ties.
//
// Both are pure functions of immutable tables, so concurrent use is safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace tessera::tokenizer {

class MergeTable {
 public:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  // Returns false if the pair is already present (the first rank wins, as in HF).
  bool Add(int32_t left, int32_t right, int32_t rank, int32_t result) {
    return map_.try_emplace(Key(left, right), Merge{rank, result}).second;
  }
  const Merge* Find(int32_t left, int32_t right) const {
    auto it = map_.find(Key(left, right));
    return it == map_.end() ? nullptr : &it->second;
  }
  size_t size() const { return map_.size(); }
  void reserve(size_t n) { map_.reserve(n); }

 private:
  static uint64_t Key(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  }
  absl::flat_hash_map<uint64_t, Merge> map_;
};

// Merges `ids` in place by rank until no adjacent pair has a merge.
void BpeMergeByRank(const MergeTable& merges, std::vector<int32_t>& ids);

// Score-driven merging of `text`, starting from its UTF-8 characters. `lookup` returns the
// id of a token that may be produced by merging (or nullopt); `scores[id]` ranks it.
// Returns the final symbols as [offset, length) spans of `text`.
template <typename Lookup>
std::vector<std::pair<size_t, size_t>> SpmMergeByScore(absl::string_view text, const Lookup& lookup,
                                                       const std::vector<float>& scores);

}  // namespace tessera::tokenizer

#include "runtime/tokenizer/bpe_inl.h"
