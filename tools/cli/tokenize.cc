// tessera tokenize -m MODEL [--json] TEXT: how a model's tokenizer cuts a text.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"

namespace tessera::cli {
namespace {

using json = nlohmann::json;

const std::vector<FlagSpec> kFlags = {
    {"--model", "-m", true, "model: .gguf file, Hugging Face folder or alias"},
    {"--json", "", false, R"(print {"ids": [...], "pieces": [...]})"},
    {"--chat", "", false, "format TEXT as a user message with the model's chat template"},
    {"--no-special", "", false, "do not add BOS/EOS (default: as the model's metadata says)"},
    {"--parse-special", "", false,
     "recognise special tokens written in TEXT, with --chat in the message too (trusted "
     "input only; off by default)"},
    {"--help", "-h", false, "show this help"},
};

// A token's bytes made visible: whitespace and control bytes escaped, bytes that are not
// complete UTF-8 on their own shown as <0xNN>.
std::string Visible(const std::string& bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool complete = len > 0 && i + len <= bytes.size();
    for (int k = 1; complete && k < len; ++k) {
      complete = (static_cast<unsigned char>(bytes[i + k]) & 0xC0) == 0x80;
    }
    if (!complete) {
      absl::StrAppend(&out, "<0x", absl::Hex(c, absl::kZeroPad2), ">");
      ++i;
    } else if (c == '\n') {
      out += "\\n", ++i;
    } else if (c == '\t') {
      out += "\\t", ++i;
    } else if (c == '\r') {
      out += "\\r", ++i;
    } else if (c < 0x20 || c == 0x7F) {
      absl::StrAppend(&out, "<0x", absl::Hex(c, absl::kZeroPad2), ">"), ++i;
    } else {
      out.append(bytes, i, len);
      i += len;
    }
  }
  return out;
}

}  // namespace

int TokenizeMain(int argc, char** argv) {
  auto args = Args::Parse(kFlags, argc, argv, 0);
  if (!args.ok()) return Fail("tokenize", args.status());
  if (args->Has("--help") || !args->Has("--model") || args->positional().size() != 1) {
    std::fprintf(args->Has("--help") ? stdout : stderr,
                 "usage: tessera tokenize -m MODEL [--json] [--chat] TEXT\n%s",
                 FlagHelp(kFlags).c_str());
    return args->Has("--help") ? 0 : 2;
  }
  auto model = ModelSource::Open(*args->Get("--model"));
  if (!model.ok()) return Fail("tokenize", model.status());
  auto tok = LoadTokenizer(**model);
  if (!tok.ok()) return Fail("tokenize", tok.status());

  const bool parse_special = args->Has("--parse-special");
  absl::StatusOr<std::vector<int32_t>> encoded =
      args->Has("--no-special") && !args->Has("--chat")
          ? (*tok)->Encode(args->positional()[0],
                           {.add_special = false, .parse_special = parse_special})
          : EncodePrompt(**tok, args->positional()[0], args->Has("--chat"), parse_special);
  if (!encoded.ok()) return Fail("tokenize", encoded.status());
  const std::vector<int32_t>& ids = *encoded;

  std::vector<std::string> pieces;
  for (int32_t id : ids) pieces.push_back((*tok)->TokenBytes(id));
  if (args->Has("--json")) {
    std::printf("%s\n", DumpJson(json{{"ids", ids}, {"pieces", pieces}}).c_str());
    return 0;
  }
  const json summary = TokenizerSummary(**tok);
  std::printf("tokenizer  %s, %d tokens, pre-tokenizer %s\n",
              summary["kind"].get<std::string>().c_str(), summary["vocab_size"].get<int>(),
              summary["pre_tokenizer"].get<std::string>().c_str());
  std::string specials;
  for (const auto& [name, s] : summary["special"].items()) {
    if (!s.is_null()) {
      absl::StrAppend(&specials, " ", name, "=", s["id"].get<int>(), " ", DumpJson(s["text"]));
    }
  }
  std::printf("special   %s\n", specials.c_str());
  std::printf("%zu tokens:\n  ", ids.size());
  for (const std::string& p : pieces) std::printf("[%s]", Visible(p).c_str());
  std::printf("\nids:\n  %s\n", absl::StrJoin(ids, " ").c_str());
  return 0;
}

}  // namespace tessera::cli
