// Chat templates: the model's own, rendered by the Jinja interpreter (jinja.h), and
// built-in renderings of the families Tessera recognises (ChatML, Llama 3, Gemma) for
// files without one (DetectChatFormat picks one by the vocabulary's special tokens).
#include <string>

#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/jinja.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/tokenizer_data.h"

namespace tessera::tokenizer {
namespace {

absl::string_view Trim(absl::string_view s) {
  constexpr absl::string_view kWs = " \t\n\r\v\f";
  const size_t b = s.find_first_not_of(kWs);
  if (b == absl::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kWs) - b + 1);
}

}  // namespace

std::optional<ChatFormat> DetectChatFormat(const Tokenizer& tok) {
  const TokenizerData& d = tok.data();
  if (d.Find("<|im_start|>") && d.Find("<|im_end|>")) return ChatFormat::kChatML;
  if (d.Find("<|start_header_id|>") && d.Find("<|eot_id|>")) return ChatFormat::kLlama3;
  if (d.Find("<start_of_turn>") && d.Find("<end_of_turn>")) return ChatFormat::kGemma;
  return std::nullopt;
}

RenderedChat RenderChat(ChatFormat format, std::span<const ChatMessage> messages,
                        bool add_generation_prompt, absl::string_view default_system) {
  RenderedChat r;
  // The template's own text: the only place special tokens may be recognised.
  auto marker = [&r](absl::string_view text) {
    r.template_ranges.emplace_back(r.text.size(), r.text.size() + text.size());
    absl::StrAppend(&r.text, text);
  };
  // Roles and contents come from the caller and are never read as special tokens.
  auto content = [&r](absl::string_view text) { absl::StrAppend(&r.text, text); };
  switch (format) {
    case ChatFormat::kChatML:
      if (!default_system.empty() && !messages.empty() && messages[0].role != "system") {
        marker("<|im_start|>");
        content("system\n");
        content(default_system);
        marker("<|im_end|>");
        content("\n");
      }
      for (const ChatMessage& m : messages) {
        marker("<|im_start|>");
        content(m.role);
        content("\n");
        content(m.content);
        marker("<|im_end|>");
        content("\n");
      }
      if (add_generation_prompt) {
        marker("<|im_start|>");
        content("assistant\n");
      }
      break;
    case ChatFormat::kLlama3:
      if (!messages.empty()) marker("<|begin_of_text|>");
      for (const ChatMessage& m : messages) {
        marker("<|start_header_id|>");
        content(m.role);
        marker("<|end_header_id|>");
        content("\n\n");
        content(Trim(m.content));
        marker("<|eot_id|>");
      }
      if (add_generation_prompt) {
        marker("<|start_header_id|>");
        content("assistant");
        marker("<|end_header_id|>");
        content("\n\n");
      }
      break;
    case ChatFormat::kGemma: {
      // Gemma's template: BOS, then turns "<start_of_turn>ROLE\nCONTENT<end_of_turn>\n" with
      // the assistant's role written "model" and contents trimmed; a leading system message
      // is no turn of its own but opens the first user turn, followed by a blank line.
      if (messages.empty()) break;
      marker("<bos>");
      const bool system = messages[0].role == "system";
      const size_t first = system ? 1 : 0;
      for (size_t i = first; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        marker("<start_of_turn>");
        content(m.role == "assistant" ? "model" : m.role);
        content("\n");
        if (i == first && system) {
          content(messages[0].content);
          content("\n\n");
        }
        content(Trim(m.content));
        marker("<end_of_turn>");
        content("\n");
      }
      if (add_generation_prompt) {
        marker("<start_of_turn>");
        content("model\n");
      }
      break;
    }
  }
  return r;
}

absl::StatusOr<RenderedChat> RenderModelTemplate(const Tokenizer& tok,
                                                 std::span<const ChatMessage> messages,
                                                 bool add_generation_prompt) {
  auto fail = [](const absl::Status& s) {
    return absl::InvalidArgumentError(absl::StrCat("chat template ", s.message()));
  };
  auto t = jinja::Template::Parse(tok.chat_template());
  if (!t.ok()) return fail(t.status());
  jinja::List msgs;
  for (const ChatMessage& m : messages) {
    msgs.push_back(jinja::Value::MakeDict(
        {{"role", jinja::Value::Input(m.role)}, {"content", jinja::Value::Input(m.content)}}));
  }
  auto token = [&](std::optional<int32_t> id) {
    return jinja::Value::String(id ? std::string(tok.TokenText(*id)) : "");
  };
  const jinja::Value context = jinja::Value::MakeDict({
      {"messages", jinja::Value::MakeList(std::move(msgs))},
      {"add_generation_prompt", jinja::Value::Bool(add_generation_prompt)},
      {"bos_token", token(tok.bos_id())},
      {"eos_token", token(tok.eos_id())},
  });
  auto r = t->Render(context);
  if (!r.ok()) return fail(r.status());
  RenderedChat out;
  out.text = std::move(r->text);
  // The template's own bytes: the gaps between the input ranges. An empty list would mean
  // "no restriction" to Encode, so a rendering that is all input gets one empty range.
  size_t at = 0;
  for (auto [b, e] : r->input_ranges) {
    if (b > at) out.template_ranges.emplace_back(at, b);
    at = e;
  }
  if (at < out.text.size()) out.template_ranges.emplace_back(at, out.text.size());
  if (out.template_ranges.empty()) out.template_ranges.emplace_back(0, 0);
  return out;
}

std::string ChatTemplateKind(const Tokenizer& tok) {
  if (!tok.chat_template().empty()) return "jinja";
  const std::optional<ChatFormat> f = DetectChatFormat(tok);
  if (!f) return "";
  switch (*f) {
    case ChatFormat::kChatML: return "chatml";
    case ChatFormat::kLlama3: return "llama3";
    case ChatFormat::kGemma: return "gemma";
  }
  return "";
}

std::string ApplyChatTemplate(ChatFormat format, std::span<const ChatMessage> messages,
                              bool add_generation_prompt, absl::string_view default_system) {
  return RenderChat(format, messages, add_generation_prompt, default_system).text;
}

absl::StatusOr<std::vector<int32_t>> EncodeChat(const Tokenizer& tok, ChatFormat format,
                                                std::span<const ChatMessage> messages,
                                                const ChatEncodeOptions& opts) {
  const RenderedChat chat =
      RenderChat(format, messages, opts.add_generation_prompt, opts.default_system);
  EncodeOptions enc;
  enc.add_special = false;  // the template writes BOS itself where the model wants one
  enc.parse_special = true;
  if (!opts.parse_special_in_content) enc.special_ranges = chat.template_ranges;
  return tok.Encode(chat.text, enc);
}

}  // namespace tessera::tokenizer
