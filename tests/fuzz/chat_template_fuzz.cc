// Fuzz target: chat templates (runtime/tokenizer/chat_template.cc and the Jinja
// interpreter, jinja.h). A small byte-level tokenizer (tests/data/golden/llama/
// tokenizer.json, optionally with the ChatML and Llama 3 special tokens added) gets a
// fuzzed chat_template through tokenizer_config.json; then the Jinja path (parse, render
// with the fuzzed messages, the input ranges checked to lie sorted inside the output, and
// EncodeMessages), and the built-ins: DetectChatFormat,
// ApplyChatTemplate in every format over the messages, and for the detected format an
// Encode (parse_special) of the rendered prompt, EncodeChat, and Decodes.
//
// Input: one flags byte, then NUL-separated fields: the template, then role, content,
// role, content, ... Flags: bit 0 add_generation_prompt; bit 1 vocabulary has the chat
// special tokens; bit 2 chat_template given as [{"name": "default", "template": ...}];
// bit 3 EncodeChat's parse_special_in_content.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/prompt.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using json = nlohmann::json;
namespace tk = tessera::tokenizer;

// tokenizer.json texts: [0] as stored, [1] with the chat special tokens added.
const std::string& BaseTokenizer(bool with_specials) {
  static const std::string* texts = [] {
    std::ifstream in(TESSERA_FUZZ_TOKENIZER_JSON);
    std::stringstream ss;
    ss << in.rdbuf();
    json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) std::abort();  // the harness's own data is missing
    auto* out = new std::string[2];
    out[0] = j.dump();
    int id = static_cast<int>(j["model"]["vocab"].size());
    for (const char* s : {"<|im_start|>", "<|im_end|>", "<|begin_of_text|>",
                          "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}) {
      j["added_tokens"].push_back({{"id", id++}, {"content", s}, {"special", true}});
    }
    out[1] = j.dump();
    return out;
  }();
  return texts[with_specials ? 1 : 0];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  const absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::vector<absl::string_view> fields = absl::StrSplit(rest, '\0');

  // JSON holds Unicode text only: invalid UTF-8 in the template becomes U+FFFD.
  const std::string tmpl(fields[0]);
  json cfg = json::object();
  if (flags & 4) {
    cfg["chat_template"] = json::array({{{"name", "default"}, {"template", tmpl}}});
  } else {
    cfg["chat_template"] = tmpl;
  }
  const std::string cfg_text = cfg.dump(-1, ' ', false, json::error_handler_t::replace);
  auto tok = tk::Tokenizer::FromHfJson(BaseTokenizer(flags & 2), cfg_text, "fuzz");
  if (!tok.ok()) __builtin_trap();  // the base tokenizer and this config are valid
  const tk::Tokenizer& t = **tok;

  std::vector<tk::ChatMessage> messages;
  for (size_t i = 1; i + 1 < fields.size(); i += 2) {
    messages.push_back({std::string(fields[i]), std::string(fields[i + 1])});
  }
  // The model's own template through the Jinja interpreter: errors are fine, crashes,
  // hangs and ranges outside the text are not.
  if (!tmpl.empty() && !t.chat_template().empty()) {
    auto chat = tk::RenderModelTemplate(t, messages, flags & 1);
    if (chat.ok()) {
      size_t at = 0;
      for (auto [b, e] : chat->template_ranges) {
        if (b < at || e < b || e > chat->text.size()) __builtin_trap();
        at = e;
      }
    }
    (void)tessera::fuzz::Ids(tk::EncodeMessages(t, messages, flags & 8));
  }
  const std::optional<tk::ChatFormat> detected = tk::DetectChatFormat(t);
  const std::string system = messages.empty() ? std::string() : messages[0].content;
  const bool gen = flags & 1;
  for (tk::ChatFormat format :
       {tk::ChatFormat::kChatML, tk::ChatFormat::kLlama3, tk::ChatFormat::kGemma}) {
    const std::string prompt = tk::ApplyChatTemplate(format, messages, gen, system);
    if (detected != format) continue;
    tk::EncodeOptions opts;
    opts.parse_special = true;
    opts.add_special = format != tk::ChatFormat::kLlama3;
    const std::vector<int32_t> ids = tessera::fuzz::Ids(t.Encode(prompt, opts));
    (void)t.Decode(ids, /*skip_special=*/false);
    // The conversation encoder: markers as control tokens, contents as plain text.
    tk::ChatEncodeOptions chat;
    chat.add_generation_prompt = gen;
    chat.default_system = system;
    chat.parse_special_in_content = flags & 8;
    const std::vector<int32_t> chat_ids =
        tessera::fuzz::Ids(tk::EncodeChat(t, format, messages, chat));
    (void)t.Decode(chat_ids, /*skip_special=*/false);
  }
  return 0;
}
