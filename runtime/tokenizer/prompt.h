// A model's tokenizer and the token ids of a prompt (raw text or a chat), as every
// front end (the CLI, the gRPC coordinator) builds them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/model/model_source.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tessera::tokenizer {

// The tokenizer of a GGUF file (its metadata) or a Hugging Face folder (tokenizer.json).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const ModelSource& model);

// The ids of a prompt. `chat`: `text` is a user message formatted with the model's chat
// template (EncodeMessages): the template's markers become special tokens, BOS where
// the template writes it. Otherwise BOS/EOS as the model's metadata says. Special tokens
// typed in `text` are ordinary text unless `parse_special` (trusted input only).
absl::StatusOr<std::vector<int32_t>> EncodePrompt(const Tokenizer& tok,
                                                  const std::string& text, bool chat,
                                                  bool parse_special);

// The ids of a chat (role, content messages) formatted with the model's chat template
// (its own Jinja template, RenderModelTemplate; for a file without one, the built-in format
// its vocabulary points to), ending with the assistant's generation prompt. The template's
// text may write special tokens; roles and contents may not, unless `parse_special`.
absl::StatusOr<std::vector<int32_t>> EncodeMessages(const Tokenizer& tok,
                                                    std::span<const ChatMessage> messages,
                                                    bool parse_special);

// Appends the ids that end the model's turn (EOS, and EOT where the vocabulary has one) to
// `stop_tokens`: generation stops at them unless a request says otherwise.
void AppendEndIds(const Tokenizer& tok, std::vector<int32_t>& stop_tokens);

}  // namespace tessera::tokenizer
