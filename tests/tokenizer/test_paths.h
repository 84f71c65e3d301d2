// Where the tokenizer tests find their data. Each returns a path; the tests check that it
// exists and fail (not skip) with the command that fetches it when it does not.
#pragma once

#include <cstdlib>
#include <string>

namespace tessera::tokenizer::testing {

inline std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

inline std::string HomeCache(const std::string& sub) {
  return EnvOr("HOME", "/root") + "/.cache/tessera/" + sub;
}

// llama.cpp's ggml-vocab-*.gguf{,.inp,.out} (deploy/fetch-test-data.sh).
inline std::string LlamaVocabDir() {
  return EnvOr("TESSERA_LLAMA_VOCAB_DIR", HomeCache("llama-vocab"));
}

// Model files (deploy/fetch-model.sh).
inline std::string ModelsDir() { return EnvOr("TESSERA_MODELS", HomeCache("models")); }

// tests/data, set by tessera_test(); falls back to the source tree layout.
inline std::string TestDataDir() {
#ifdef TESSERA_SOURCE_DIR
  return EnvOr("TESSERA_TEST_DATA", std::string(TESSERA_SOURCE_DIR) + "/tests/data");
#else
  return EnvOr("TESSERA_TEST_DATA", "tests/data");
#endif
}

}  // namespace tessera::tokenizer::testing
