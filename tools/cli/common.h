// Pieces shared by the subcommands: opening a model and its tokenizer, printing errors.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "parallel/topology.h"
#include "absl/strings/string_view.h"
#include "runtime/engine/transformer.h"
#include "runtime/model/model_source.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tessera::cli {

// The tokenizer of a GGUF file (its metadata) or a Hugging Face folder (tokenizer.json).
absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadTokenizer(const ModelSource& model);

// Vocabulary size, kind, special tokens, pre-tokenizer and chat format, as JSON.
nlohmann::json TokenizerSummary(const tokenizer::Tokenizer& tok);

// The ids of a prompt. `chat`: `text` is a user message formatted with the model's chat
// template (ChatML or Llama 3): the template's markers become special tokens, BOS where
// the template writes it. Otherwise BOS/EOS as the model's metadata says. Special tokens
// typed in `text` are ordinary text unless `parse_special` (trusted input only).
absl::StatusOr<std::vector<int32_t>> EncodePrompt(const tokenizer::Tokenizer& tok,
                                                  const std::string& text, bool chat,
                                                  bool parse_special);

// The ids of a chat (role, content messages) formatted with the model's chat template,
// ending with the assistant's generation prompt.
absl::StatusOr<std::vector<int32_t>> EncodeMessages(const tokenizer::Tokenizer& tok,
                                                    std::span<const tokenizer::ChatMessage> messages,
                                                    bool parse_special);

// --kv-cache-memory: bytes ("1073741824", "512M", "4G") or, with a decimal point, a
// fraction of the memory available now ("0.5").
absl::StatusOr<int64_t> KvPoolBytes(absl::string_view spec);
// Blocks of `block_size` tokens that `pool_bytes` of KV on this rank hold (at least one);
// `print`: the start line (blocks, tokens, bytes per token per rank, sequences at the
// model's context).
absl::StatusOr<int64_t> KvBlocksFor(const Transformer& model, int64_t pool_bytes,
                                    int64_t block_size, bool print);

// The layout-relevant shape of a model, as parallel::Topology checks it.
parallel::ModelShape ShapeOf(const ModelConfig& config);

// Prints "tessera CMD: message" to stderr and returns exit code 1.
int Fail(const char* cmd, const absl::Status& status);

// JSON text safe for any bytes: invalid UTF-8 becomes U+FFFD.
std::string DumpJson(const nlohmann::json& j, int indent = -1);

}  // namespace tessera::cli
