// What a MODEL argument on the command line names, opened: a .gguf file, a Hugging Face
// directory (config.json + safetensors, or only tokenizer files), or a known alias such as
// "smollm2-135m-instruct" that deploy/fetch-model.sh stores in the model cache.
//
// Immutable after Open(); thread-safe reads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/model/gguf.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/model/model_config.h"

namespace tessera {

struct ModelAlias {
  const char* name;  // what users type
  const char* file;  // file name in the model cache
};
// Aliases that deploy/fetch-model.sh knows how to fetch.
std::span<const ModelAlias> KnownAliases();

// $TESSERA_MODELS, else ~/.cache/tessera/models.
std::string ModelCacheDir();

class ModelSource {
 public:
  enum class Format { kGguf, kHfDir };

  static absl::StatusOr<std::unique_ptr<ModelSource>> Open(const std::string& arg);

  Format format() const { return format_; }
  const std::string& path() const { return path_; }  // the file or directory opened
  // Null for a Hugging Face directory that holds only tokenizer files.
  const ModelConfig* config() const { return config_ ? &*config_ : nullptr; }
  const std::vector<const TensorInfo*>& tensors() const { return tensors_; }
  const gguf::GgufFile* gguf() const { return gguf_.get(); }
  const HfCheckpoint* hf() const { return hf_.get(); }

 private:
  ModelSource() = default;

  // Immutable after construction.
  Format format_ = Format::kGguf;
  std::string path_;
  std::unique_ptr<gguf::GgufFile> gguf_;
  std::unique_ptr<HfCheckpoint> hf_;
  std::optional<ModelConfig> config_;
  std::vector<const TensorInfo*> tensors_;
};

}  // namespace tessera
