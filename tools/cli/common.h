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
#include "parallel/replica.h"
#include "parallel/topology.h"
#include "absl/strings/string_view.h"
#include "runtime/engine/transformer.h"
#include "runtime/model/model_source.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/cli/args.h"

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
// --kv-type (every command that runs the engine): the KV cache's element type.
constexpr const char* kKvTypeHelp = "KV cache element type: f16 (default), bf16 or f32";
absl::StatusOr<kernels::DType> KvTypeArg(const Args& args);
// KV bytes one token position takes on this rank (every layer's K and V).
int64_t KvBytesPerToken(const Transformer& model, kernels::DType kv_type);
// Blocks of `block_size` tokens that `pool_bytes` of KV on this rank hold (at least one);
// `print`: the start line (blocks, tokens, bytes per token per rank, sequences at the
// model's context).
absl::StatusOr<int64_t> KvBlocksFor(const Transformer& model, int64_t pool_bytes,
                                    int64_t block_size, kernels::DType kv_type, bool print);

// One rank's part of a replica: the model file, the replica it joined and its shard of
// the weights. Declared so that the model goes first (it borrows the communicators).
struct LoadedReplica {
  std::unique_ptr<ModelSource> source;
  std::unique_ptr<parallel::Replica> replica;
  std::unique_ptr<Transformer> model;
};
// Opens --model (refusing a folder without weights), joins the replica (tp x ep, every
// collective bounded by `timeout_s`) and loads this rank's shard (--exact honoured); prints
// the rank's start line (rank, groups, pid, weight bytes).
absl::StatusOr<LoadedReplica> LoadReplica(const Args& args, int tp, int ep, double timeout_s,
                                          int* argc, char*** argv);
// The model's tokenizer, refused when its vocabulary is not the model's.
absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadModelTokenizer(const ModelSource& source,
                                                                         const Transformer& model);

// The layout-relevant shape of a model, as parallel::Topology checks it.
parallel::ModelShape ShapeOf(const ModelConfig& config);

// Prints "tessera CMD: message" to stderr and returns exit code 1.
int Fail(const char* cmd, const absl::Status& status);

// JSON text safe for any bytes: invalid UTF-8 becomes U+FFFD.
std::string DumpJson(const nlohmann::json& j, int indent = -1);

}  // namespace tessera::cli
