#include "runtime/tokenizer/prompt.h"

namespace tessera::tokenizer {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const ModelSource& model) {
  switch (model.format()) {
    case ModelSource::Format::kGguf: return Tokenizer::FromGguf(*model.gguf());
    case ModelSource::Format::kHfDir: return Tokenizer::FromHfDir(model.path());
  }
  return absl::InternalError("unknown model format");
}

absl::StatusOr<std::vector<int32_t>> EncodePrompt(const Tokenizer& tok,
                                                  const std::string& text, bool chat,
                                                  bool parse_special) {
  if (!chat) return tok.Encode(text, {.add_special = true, .parse_special = parse_special});
  const ChatMessage msg{"user", text};
  return EncodeMessages(tok, {&msg, 1}, parse_special);
}

absl::StatusOr<std::vector<int32_t>> EncodeMessages(const Tokenizer& tok,
                                                    std::span<const ChatMessage> messages,
                                                    bool parse_special) {
  if (!tok.chat_template().empty()) {  // the model's own template
    auto chat = RenderModelTemplate(tok, messages, /*add_generation_prompt=*/true);
    if (!chat.ok()) return chat.status();
    EncodeOptions enc{.add_special = false, .parse_special = true};
    if (!parse_special) enc.special_ranges = chat->template_ranges;
    return tok.Encode(chat->text, enc);
  }
  // A file without a template: a built-in format its special tokens point to.
  const std::optional<ChatFormat> format = DetectChatFormat(tok);
  if (!format) {
    return absl::InvalidArgumentError(
        "chat: the model has no chat template, and its vocabulary matches none of the "
        "built-in formats (ChatML, Llama 3, Gemma)");
  }
  return EncodeChat(tok, *format, messages,
                    {.add_generation_prompt = true, .parse_special_in_content = parse_special});
}

void AppendEndIds(const Tokenizer& tok, std::vector<int32_t>& stop_tokens) {
  for (std::optional<int32_t> id : {tok.eos_id(), tok.eot_id()}) {
    if (id) stop_tokens.push_back(*id);
  }
}

}  // namespace tessera::tokenizer
