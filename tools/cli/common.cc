#include "tools/cli/common.h"

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace tessera::cli {

using json = nlohmann::json;

absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadTokenizer(const ModelSource& model) {
  switch (model.format()) {
    case ModelSource::Format::kGguf: return tokenizer::Tokenizer::FromGguf(*model.gguf());
    case ModelSource::Format::kHfDir: return tokenizer::Tokenizer::FromHfDir(model.path());
  }
  return absl::InternalError("unknown model format");
}

json TokenizerSummary(const tokenizer::Tokenizer& tok) {
  json j;
  j["kind"] = tok.kind() == tokenizer::Kind::kByteLevelBpe ? "byte-level BPE"
                                                           : "SentencePiece BPE (byte fallback)";
  j["vocab_size"] = tok.vocab_size();
  j["pre_tokenizer"] = std::string(tok.pre_tokenizer_name());
  auto special = [&](const char* name, std::optional<int32_t> id) {
    if (id) {
      j["special"][name] = {{"id", *id}, {"text", std::string(tok.TokenText(*id))}};
    } else {
      j["special"][name] = nullptr;
    }
  };
  special("bos", tok.bos_id());
  special("eos", tok.eos_id());
  special("eot", tok.eot_id());
  special("pad", tok.pad_id());
  special("unk", tok.unk_id());
  j["add_bos"] = tok.add_bos();
  j["add_eos"] = tok.add_eos();
  int special_count = 0;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) special_count += tok.IsSpecial(id);
  j["special_token_count"] = special_count;
  const std::optional<tokenizer::ChatFormat> chat = tokenizer::DetectChatFormat(tok);
  if (!chat) {
    j["chat_format"] = nullptr;
  } else {
    switch (*chat) {
      case tokenizer::ChatFormat::kChatML: j["chat_format"] = "chatml"; break;
      case tokenizer::ChatFormat::kLlama3: j["chat_format"] = "llama3"; break;
    }
  }
  return j;
}

absl::StatusOr<std::vector<int32_t>> EncodePrompt(const tokenizer::Tokenizer& tok,
                                                  const std::string& text, bool chat,
                                                  bool parse_special) {
  if (!chat) return tok.Encode(text, {.add_special = true, .parse_special = parse_special});
  const std::optional<tokenizer::ChatFormat> format = tokenizer::DetectChatFormat(tok);
  if (!format) {
    return absl::InvalidArgumentError(
        "--chat: the model has no chat template Tessera knows (ChatML or Llama 3)");
  }
  const tokenizer::ChatMessage msg{"user", text};
  return tokenizer::EncodeChat(tok, *format, {&msg, 1},
                               {.add_generation_prompt = true,
                                .default_system = tokenizer::DefaultSystemMessage(tok),
                                .parse_special_in_content = parse_special});
}

parallel::ModelShape ShapeOf(const ModelConfig& c) {
  return parallel::ModelShape{.n_heads = c.n_heads,
                              .n_kv_heads = c.n_kv_heads,
                              .head_dim = c.head_dim,
                              .ffn = c.n_experts > 0 ? 0 : c.ffn,
                              .n_experts = c.n_experts,
                              .moe_ffn = c.expert_ffn,
                              .vocab = c.vocab};
}

int Fail(const char* cmd, const absl::Status& status) {
  std::fprintf(stderr, "tessera %s: %s\n", cmd, std::string(status.message()).c_str());
  return 1;
}

std::string DumpJson(const json& j, int indent) {
  return j.dump(indent, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

}  // namespace tessera::cli
