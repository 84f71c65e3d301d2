// The tokenizer.json folders in tests/data/tokenizers (llama3, qwen3, llama2), each loaded
// once per test binary. A folder that does not load fails the test and aborts.
#pragma once

#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/tokenizer/test_paths.h"

namespace tessera::tokenizer {

inline const Tokenizer& Hf(const std::string& name) {
  static auto* cache = new std::map<std::string, std::unique_ptr<Tokenizer>>();
  auto it = cache->find(name);
  if (it == cache->end()) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok =
        Tokenizer::FromHfDir(testing::TestDataDir() + "/tokenizers/" + name);
    if (!tok.ok()) {
      ADD_FAILURE() << tok.status();
      std::abort();
    }
    it = cache->emplace(name, *std::move(tok)).first;
  }
  return *it->second;
}

}  // namespace tessera::tokenizer
