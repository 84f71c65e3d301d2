#include "runtime/model/model_source.h"

#include <array>
#include <cstdlib>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tessera {
namespace fs = std::filesystem;

std::span<const ModelAlias> KnownAliases() {
  static constexpr std::array<ModelAlias, 2> kAliases = {{
      {"smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"},
      {"gemma3-270m-it", "gemma-3-270m-it-Q4_K_M.gguf"},
  }};
  return kAliases;
}

std::string ModelCacheDir() {
  if (const char* dir = std::getenv("TESSERA_MODELS"); dir != nullptr && *dir != '\0') return dir;
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : ".", "/.cache/tessera/models");
}

absl::StatusOr<std::unique_ptr<ModelSource>> ModelSource::Open(const std::string& arg) {
  std::unique_ptr<ModelSource> src(new ModelSource());
  std::error_code ec;
  std::string path = arg;
  if (!fs::exists(path, ec)) {
    const ModelAlias* alias = nullptr;
    for (const ModelAlias& a : KnownAliases()) {
      if (arg == a.name) alias = &a;
    }
    if (alias == nullptr) {
      std::vector<std::string> names;
      for (const ModelAlias& a : KnownAliases()) names.push_back(a.name);
      return absl::NotFoundError(absl::StrCat(
          arg, ": no such file or directory, and not a known alias (known: ",
          absl::StrJoin(names, ", "), ")"));
    }
    path = (fs::path(ModelCacheDir()) / alias->file).string();
    if (!fs::exists(path, ec)) {
      return absl::NotFoundError(absl::StrCat("model ", arg, " is not in the model cache (", path,
                                              "); fetch it with: deploy/fetch-model.sh ", arg));
    }
  }
  src->path_ = path;
  if (fs::is_directory(path, ec)) {
    src->format_ = Format::kHfDir;
    if (!fs::exists(fs::path(path) / "config.json", ec)) {
      if (!fs::exists(fs::path(path) / "tokenizer.json", ec)) {
        return absl::NotFoundError(
            absl::StrCat(path, ": neither config.json nor tokenizer.json found"));
      }
      return src;  // tokenizer-only folder
    }
    auto hf = HfCheckpoint::Open(path);
    if (!hf.ok()) return hf.status();
    auto config = ConfigFromHf((*hf)->config(), (fs::path(path) / "config.json").string());
    if (!config.ok()) return config.status();
    src->config_ = std::move(*config);
    src->tensors_ = (*hf)->tensors();
    src->hf_ = std::move(*hf);
    return src;
  }
  auto gguf = gguf::GgufFile::Open(path);
  if (!gguf.ok()) {
    if (!absl::EndsWith(path, ".gguf")) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": not a GGUF file or a Hugging Face directory (", gguf.status().message(), ")"));
    }
    return gguf.status();
  }
  src->format_ = Format::kGguf;
  for (const TensorInfo& t : (*gguf)->tensors()) src->tensors_.push_back(&t);
  if (!(*gguf)->tensors().empty()) {  // vocab-only files carry no hyper-parameters
    auto config = ConfigFromGguf(**gguf);
    if (!config.ok()) return config.status();
    src->config_ = std::move(*config);
  }
  src->gguf_ = std::move(*gguf);
  return src;
}

}  // namespace tessera
