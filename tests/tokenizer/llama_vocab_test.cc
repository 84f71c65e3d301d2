// llama.cpp's tokenizer test vectors: for each ggml-vocab-<name>.gguf, the texts in
// <name>.gguf.inp (separated by "\n__ggml_vocab_test__\n") must encode, with
// add_special=false and parse_special=false, to the ids on the matching line of
// <name>.gguf.out (made by Hugging Face AutoTokenizer, encode(add_special_tokens=False)).
#include <filesystem>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "runtime/io/mapped_file.h"
#include "runtime/model/gguf.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/tokenizer/test_paths.h"

namespace tessera::tokenizer {
namespace {

struct VocabCase {
  const char* name;
  const char* skip_reason;  // nullptr: must pass
};

// Every vocabulary llama.cpp ships test vectors for. Skips say why, deliberately.
const VocabCase kCases[] = {
    {"llama-bpe", nullptr},
    {"llama-spm", nullptr},
    {"qwen2", nullptr},
    {"qwen35", nullptr},
    {"gpt-2", nullptr},
    {"phi-3", nullptr},
    {"deepseek-llm", nullptr},
    {"deepseek-coder", nullptr},
    {"falcon", nullptr},
    {"mpt", nullptr},
    {"starcoder", nullptr},
    {"refact", nullptr},
    {"command-r", nullptr},
    {"gemma-4", nullptr},
    {"bert-bge", "WordPiece (tokenizer.ggml.model 'bert') is not supported"},
};

void PrintTo(const VocabCase& c, std::ostream* os) { *os << c.name; }

std::string ReadOrDie(const std::string& path) {
  absl::StatusOr<std::string> s = ReadFileToString(path);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : "";
}

std::vector<int32_t> ParseIds(absl::string_view line) {
  std::vector<int32_t> ids;
  for (absl::string_view t : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
    ids.push_back(std::stoi(std::string(t)));
  }
  return ids;
}

class LlamaVocabTest : public ::testing::TestWithParam<VocabCase> {};

TEST_P(LlamaVocabTest, MatchesHuggingFace) {
  const VocabCase c = GetParam();
  const std::string dir = testing::LlamaVocabDir();
  ASSERT_TRUE(std::filesystem::is_directory(dir))
      << "llama.cpp vocab test files not found in " << dir
      << "; run deploy/fetch-test-data.sh (or set TESSERA_LLAMA_VOCAB_DIR)";
  const std::string base = dir + "/ggml-vocab-" + c.name + ".gguf";
  ASSERT_TRUE(std::filesystem::exists(base) && std::filesystem::exists(base + ".inp"))
      << base << "{,.inp,.out} missing; run deploy/fetch-test-data.sh";

  absl::StatusOr<std::unique_ptr<gguf::GgufFile>> file = gguf::GgufFile::Open(base);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromGguf(**file);
  if (c.skip_reason != nullptr) {
    // A deliberate skip must still fail cleanly, with a message naming the feature.
    ASSERT_FALSE(tok.ok());
    EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument) << tok.status();
    GTEST_SKIP() << c.name << ": " << c.skip_reason << " (" << tok.status().message() << ")";
  }
  ASSERT_TRUE(tok.ok()) << tok.status();

  const std::string inp = ReadOrDie(base + ".inp");
  const std::string out = ReadOrDie(base + ".out");
  const std::vector<std::string> texts = absl::StrSplit(inp, "\n__ggml_vocab_test__\n");
  const std::vector<std::string> lines = absl::StrSplit(out, '\n');
  ASSERT_GE(lines.size(), texts.size()) << base << ".out has fewer lines than .inp has texts";

  EncodeOptions opts;
  opts.add_special = false;
  opts.parse_special = false;
  int matched = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int32_t> want = ParseIds(lines[i]);
    const std::vector<int32_t> got = (*tok)->Encode(texts[i], opts).value();
    if (got == want) {
      ++matched;
    } else {
      ADD_FAILURE() << c.name << " text " << i << " '" << texts[i] << "'\n  want "
                    << absl::StrJoin(want, " ") << "\n  got  " << absl::StrJoin(got, " ");
    }
  }
  std::printf("[ vectors  ] %s: %d/%zu matched\n", c.name, matched, texts.size());
  EXPECT_EQ(matched, static_cast<int>(texts.size()));
}

INSTANTIATE_TEST_SUITE_P(AllVocabs, LlamaVocabTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<VocabCase>& info) {
                           std::string n = info.param.name;
                           for (char& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace tessera::tokenizer
