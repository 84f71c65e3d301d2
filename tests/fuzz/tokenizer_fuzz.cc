// Fuzz target: a Hugging Face tokenizer.json (runtime/tokenizer/load_hf.cc,
// tokenizer_json.cc) loaded through Tokenizer::FromHfJson, then an Encode and a Decode of a
// fixed short text and of a slice of the input itself, with and without special tokens.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

void RoundTrip(const tessera::tokenizer::Tokenizer& tok, absl::string_view text) {
  for (bool special : {false, true}) {
    tessera::tokenizer::EncodeOptions opts;
    opts.add_special = special;
    opts.parse_special = special;
    const std::vector<int32_t> ids = tessera::fuzz::Ids(tok.Encode(text, opts));
    for (int32_t id : ids) {
      if (id < 0 || id >= tok.vocab_size()) __builtin_trap();  // Encode must stay in range
    }
    (void)tok.Decode(ids, /*skip_special=*/special);
    tessera::tokenizer::IncrementalDecoder inc(tok);
    for (int32_t id : ids) (void)inc.Push(id);
    (void)inc.Flush();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string json(reinterpret_cast<const char*>(data), size);
  auto tok = tessera::tokenizer::Tokenizer::FromHfJson(json, std::nullopt, "fuzz");
  if (!tok.ok()) return 0;
  const tessera::tokenizer::Tokenizer& t = **tok;
  RoundTrip(t, "Hello, world! 123  héllo\n\tend <s></s><|im_start|>");
  // The last bytes of the input: arbitrary, often invalid UTF-8, near the vocabulary.
  RoundTrip(t, absl::string_view(json).substr(size > 96 ? size - 96 : 0));
  const int32_t probe[] = {-1, 0, 1, t.vocab_size() - 1, t.vocab_size(), INT32_MAX};
  (void)t.Decode(probe, /*skip_special=*/false);
  for (int32_t id : probe) (void)t.TokenText(id), (void)t.TokenBytes(id), (void)t.IsSpecial(id);
  return 0;
}
