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
#include "runtime/engine/engine.h"
#include "runtime/engine/transformer.h"
#include "runtime/model/model_source.h"
#include "runtime/tokenizer/prompt.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/cli/args.h"

namespace tessera::cli {

using tokenizer::LoadTokenizer;

// Vocabulary size, kind, special tokens, pre-tokenizer and chat format, as JSON.
nlohmann::json TokenizerSummary(const tokenizer::Tokenizer& tok);

using tokenizer::EncodeMessages;
using tokenizer::EncodePrompt;

// --kv-cache-memory: bytes ("1073741824", "512M", "4G") or, with a decimal point, a
// fraction of the memory available now ("0.5").
absl::StatusOr<int64_t> KvPoolBytes(absl::string_view spec);
// --kv-type (every command that runs the engine): the KV cache's element type.
constexpr const char* kKvTypeHelp = "KV cache element type: f16 (default), bf16 or f32";
absl::StatusOr<kernels::DType> KvTypeArg(const Args& args);
// KV bytes one token position takes on this rank (every layer's K and V, or latent row).
int64_t KvBytesPerToken(const Transformer& model, kernels::DType kv_type);
// Blocks of `block_size` tokens that `pool_bytes` of KV on this rank hold (at least one);
// `print`: the start line (blocks, tokens, bytes per token per rank, sequences at the
// model's context).
absl::StatusOr<int64_t> KvBlocksFor(const Transformer& model, int64_t pool_bytes,
                                    int64_t block_size, kernels::DType kv_type, bool print);

// Bounds of --tp/--ep and of --timeout (seconds a collective waits for a peer): a
// millisecond at least (0 or less would fail every collective at once), a day at most (a
// peer still loading a large model is slow, not dead).
inline constexpr int kMaxRanks = 1 << 16;
inline constexpr double kMinTimeoutS = 1e-3, kMaxTimeoutS = 86400;

// The engine flags of the commands that serve many requests (batch, serve, worker):
// --max-seqs, --max-batch-tokens, --kv-cache-memory and --kv-type.
std::vector<FlagSpec> EngineFlagSpecs(int64_t default_max_seqs);
struct EngineFlags {
  int64_t max_seqs = 16, max_batch_tokens = 512;
  int64_t pool_bytes = 0;   // --kv-cache-memory
  bool pool_given = false;  // else the pool is capped at what max_seqs full contexts need
  kernels::DType kv_type = kernels::DType::kF16;
};
// Checks the flags (before the model loads).
absl::StatusOr<EngineFlags> ParseEngineFlags(const Args& args, int64_t default_max_seqs);
// The engine's configuration for `model`; prints the KV start line.
absl::StatusOr<EngineConfig> EngineConfigFor(const EngineFlags& flags, const Transformer& model);

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
// InvalidArgument naming both sizes unless `tok` has the model's vocabulary.
absl::Status CheckTokenizerVocab(const ModelConfig& model, const tokenizer::Tokenizer& tok);
// One stderr line when chat needs saying: a file without a chat template (the built-in
// format used instead), or a template that does not render.
void NoteChatTemplate(const char* cmd, const tokenizer::Tokenizer& tok);
// The model's tokenizer, refused when its vocabulary is not the model's.
absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadModelTokenizer(const ModelSource& source,
                                                                         const Transformer& model);


// Prints "tessera CMD: message" to stderr and returns exit code 1.
int Fail(const char* cmd, const absl::Status& status);

// JSON text safe for any bytes: invalid UTF-8 becomes U+FFFD.
std::string DumpJson(const nlohmann::json& j, int indent = -1);

}  // namespace tessera::cli
