// Tessera's encodings against reference encodings made by Hugging Face's Python libraries
// (tools/tokenizer_fixtures/make_fixtures.py): the tokenizer.json folders in
// tests/data/tokenizers with `tokenizers`, and SmolLM2's GGUF with `transformers`.
// Also checks that decoding each encoding gives the text back.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/io/mapped_file.h"
#include "runtime/model/gguf.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/tokenizer/test_paths.h"

namespace tessera::tokenizer {
namespace {

using json = nlohmann::json;

struct Fixture {
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> ids, ids_special, ids_raw;
  std::string tool;
};

Fixture LoadFixture(const std::string& name) {
  Fixture f;
  const std::string path = testing::TestDataDir() + "/tokenizer_fixtures/" + name + ".json";
  absl::StatusOr<std::string> text = ReadFileToString(path);
  EXPECT_TRUE(text.ok()) << text.status()
                         << " (regenerate with tools/tokenizer_fixtures/make_fixtures.py)";
  if (!text.ok()) return f;
  const json j = json::parse(*text);
  f.tool = j["tool"].get<std::string>();
  f.texts = j["texts"].get<std::vector<std::string>>();
  f.ids = j["ids"].get<std::vector<std::vector<int32_t>>>();
  f.ids_special = j["ids_special"].get<std::vector<std::vector<int32_t>>>();
  f.ids_raw = j["ids_raw"].get<std::vector<std::vector<int32_t>>>();
  EXPECT_EQ(f.ids.size(), f.texts.size());
  EXPECT_EQ(f.ids_special.size(), f.texts.size());
  EXPECT_EQ(f.ids_raw.size(), f.texts.size());
  return f;
}

// Encodes every fixture text three ways and compares; returns the number of full matches.
int CheckAll(const Tokenizer& tok, const Fixture& f, const std::string& name) {
  int matched = 0;
  for (size_t i = 0; i < f.texts.size() && i < f.ids.size(); ++i) {
    const std::string& t = f.texts[i];
    const auto plain = tok.Encode(t, {.add_special = false, .parse_special = true}).value();
    const auto special = tok.Encode(t, {.add_special = true, .parse_special = true}).value();
    const auto raw = tok.Encode(t, {.add_special = false, .parse_special = false}).value();
    EXPECT_EQ(plain, f.ids[i]) << name << " text " << i << " '" << t << "'\n  want "
                               << absl::StrJoin(f.ids[i], " ") << "\n  got  "
                               << absl::StrJoin(plain, " ");
    EXPECT_EQ(special, f.ids_special[i]) << name << " (add_special) text " << i << " '" << t << "'";
    EXPECT_EQ(raw, f.ids_raw[i]) << name << " (parse_special off) text " << i << " '" << t
                                 << "'\n  want " << absl::StrJoin(f.ids_raw[i], " ") << "\n  got  "
                                 << absl::StrJoin(raw, " ");
    matched += plain == f.ids[i] && special == f.ids_special[i] && raw == f.ids_raw[i];
  }
  std::printf("[ fixtures ] %s (%s): %d/%zu texts matched\n", name.c_str(), f.tool.c_str(), matched,
              f.texts.size());
  return matched;
}

// Decode(Encode(x)) == x for the texts a tokenizer represents exactly (NFC-normalising
// tokenizers change non-NFC input; texts with special-token strings are kept whole only
// without parse_special, which is what is encoded here).
void CheckRoundTrip(const Tokenizer& tok, const Fixture& f, const std::string& name,
                    bool normalizes) {
  for (const std::string& t : f.texts) {
    if (normalizes && t.find("\xCC") != std::string::npos) continue;          // combining marks
    if (normalizes && t.find("\xE2\x84\xAB") != std::string::npos) continue;  // U+212B
    const auto ids = tok.Encode(t, {.add_special = false, .parse_special = false}).value();
    EXPECT_EQ(tok.Decode(ids, /*skip_special=*/false), t) << name << " round trip";
  }
}

class HfFolderTest : public ::testing::TestWithParam<const char*> {};

TEST_P(HfFolderTest, MatchesTokenizersLibrary) {
  const std::string name = GetParam();
  const std::string dir = testing::TestDataDir() + "/tokenizers/" + name;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromHfDir(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const Fixture f = LoadFixture(name);
  ASSERT_FALSE(f.texts.empty());
  EXPECT_EQ(CheckAll(**tok, f, name), static_cast<int>(f.texts.size()));
  CheckRoundTrip(**tok, f, name, /*normalizes=*/name == "qwen3");
}

INSTANTIATE_TEST_SUITE_P(Folders, HfFolderTest, ::testing::Values("llama3", "qwen3", "llama2"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

// Split with literal {"String": ...} patterns (regex metacharacters among them) over Llama
// 3's vocabulary, against the tokenizers library on the same tokenizer.json.
TEST(LiteralSplitTest, MatchesTokenizersLibrary) {
  const std::string src = testing::TestDataDir() + "/tokenizers/llama3";
  absl::StatusOr<std::string> spec_text = ReadFileToString(src + "/tokenizer.json");
  ASSERT_TRUE(spec_text.ok()) << spec_text.status();
  absl::StatusOr<std::string> fixture_text =
      ReadFileToString(testing::TestDataDir() + "/tokenizer_fixtures/literal_split.json");
  ASSERT_TRUE(fixture_text.ok()) << fixture_text.status();
  json spec = json::parse(*spec_text);
  spec["pre_tokenizer"] = json::parse(*fixture_text)["pre_tokenizer"];
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("tessera-literal-split-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(src + "/tokenizer_config.json", dir / "tokenizer_config.json",
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream(dir / "tokenizer.json") << spec.dump();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromHfDir(dir.string());
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const Fixture f = LoadFixture("literal_split");
  ASSERT_FALSE(f.texts.empty());
  EXPECT_EQ(CheckAll(**tok, f, "literal_split"), static_cast<int>(f.texts.size()));
}

TEST(SmolLM2Test, MatchesTransformersFromGguf) {
  const std::string path = testing::ModelsDir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  ASSERT_TRUE(std::filesystem::exists(path))
      << path << " not found; run deploy/fetch-model.sh smollm2-135m-instruct "
      << "(or set TESSERA_MODELS)";
  absl::StatusOr<std::unique_ptr<gguf::GgufFile>> file = gguf::GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromGguf(**file);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->pre_tokenizer_name(), "smollm");
  EXPECT_EQ((*tok)->kind(), Kind::kByteLevelBpe);
  const Fixture f = LoadFixture("smollm2");
  ASSERT_FALSE(f.texts.empty());
  EXPECT_EQ(CheckAll(**tok, f, "smollm2"), static_cast<int>(f.texts.size()));
  CheckRoundTrip(**tok, f, "smollm2", /*normalizes=*/false);

  // The built-in ChatML rendering of what SmolLM2's own template gives one user message
  // (the template itself is rendered by jinja_test against jinja2).
  EXPECT_EQ(DetectChatFormat(**tok), ChatFormat::kChatML);
  const std::string system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
  const ChatMessage msgs[] = {{"user", "What is 2+2?"}};
  EXPECT_EQ(ApplyChatTemplate(ChatFormat::kChatML, msgs, true, system),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ((*tok)->eot_id(), 2);  // <|im_end|>
  EXPECT_FALSE((*tok)->add_bos());
}

}  // namespace
}  // namespace tessera::tokenizer
