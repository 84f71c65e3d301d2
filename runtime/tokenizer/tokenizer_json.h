// Parses a Hugging Face tokenizer.json quickly: a SAX pass that builds an ordinary
// nlohmann::json tree for everything except model.vocab, whose (token, id) pairs are
// streamed into a vector. The vocab of a 150k-token model is most of the file, and
// building it as a std::map-backed JSON object was the bulk of the load time.
// Internal to runtime/tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tessera::tokenizer {

struct TokenizerJson {
  nlohmann::json root;     // model.vocab is absent here
  bool has_vocab = false;  // model.vocab was present and an object
  // model.vocab entries in file order; an id that is not an integer is recorded as -1.
  std::vector<std::pair<std::string, int64_t>> vocab;
};

// Containers nested deeper than this are refused: the loaders recurse once per level
// (Sequence steps), and a hostile file must not exhaust the stack.
inline constexpr size_t kMaxTokenizerJsonDepth = 64;

// `name` is used in error messages.
absl::StatusOr<TokenizerJson> ParseTokenizerJson(const std::string& text, const std::string& name);

}  // namespace tessera::tokenizer
