#include "runtime/model/hf_checkpoint.h"

#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/io/mapped_file.h"

namespace tessera {
namespace fs = std::filesystem;
using json = nlohmann::json;

absl::StatusOr<json> ParseJsonObject(absl::string_view text, const std::string& path) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a valid JSON object"));
  }
  return j;
}

absl::StatusOr<json> ReadJsonObject(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  return ParseJsonObject(*text, path);
}

absl::StatusOr<std::unique_ptr<HfCheckpoint>> HfCheckpoint::Open(const std::string& dir) {
  std::unique_ptr<HfCheckpoint> ckpt(new HfCheckpoint());
  ckpt->dir_ = dir;
  const fs::path root(dir);
  const fs::path config_path = root / "config.json";
  std::error_code ec;
  if (!fs::exists(config_path, ec)) {
    return absl::NotFoundError(absl::StrCat(dir, ": no config.json (not a Hugging Face model "
                                                 "directory, or a tokenizer-only one)"));
  }
  auto config = ReadJsonObject(config_path.string());
  if (!config.ok()) return config.status();
  ckpt->config_ = std::move(*config);
  if (const fs::path gen = root / "generation_config.json"; fs::exists(gen, ec)) {
    auto g = ReadJsonObject(gen.string());
    if (!g.ok()) return g.status();
    ckpt->generation_config_ = std::move(*g);
  }

  // Which files hold the weights, and which tensors the index promises in each.
  std::vector<std::string> files;
  std::map<std::string, std::vector<std::string>> promised;
  const fs::path index_path = root / "model.safetensors.index.json";
  if (fs::exists(index_path, ec)) {
    auto index = ReadJsonObject(index_path.string());
    if (!index.ok()) return index.status();
    auto wm = index->find("weight_map");
    if (wm == index->end() || !wm->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(index_path.string(), ": no weight_map object"));
    }
    for (const auto& [tensor, file] : wm->items()) {
      if (!file.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(index_path.string(), ": weight_map entry for ", tensor, " is not a string"));
      }
      const std::string f = file.get<std::string>();
      if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..") {
        return absl::InvalidArgumentError(absl::StrCat(index_path.string(), ": tensor ", tensor,
                                                       ": shard name '", f, "' is not a file name"));
      }
      if (!promised.count(f)) files.push_back(f);
      promised[f].push_back(tensor);
    }
  } else if (fs::exists(root / "model.safetensors", ec)) {
    files.push_back("model.safetensors");
  } else {
    return absl::NotFoundError(
        absl::StrCat(dir, ": no model.safetensors or model.safetensors.index.json"));
  }

  for (const std::string& f : files) {
    auto shard = SafetensorsFile::Open((root / f).string());
    if (!shard.ok()) return shard.status();
    for (const TensorInfo& t : (*shard)->tensors()) {
      if (!ckpt->index_.emplace(t.name, &t).second) {
        return absl::InvalidArgumentError(
            absl::StrCat((root / f).string(), ": tensor ", t.name, ": also in another shard"));
      }
      ckpt->tensors_.push_back(&t);
    }
    for (const std::string& name : promised[f]) {
      if ((*shard)->FindTensor(name) == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            (root / f).string(), ": tensor ", name, ": listed in the index but not in this shard"));
      }
    }
    ckpt->shards_.push_back(std::move(*shard));
  }
  return ckpt;
}

const TensorInfo* HfCheckpoint::FindTensor(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

}  // namespace tessera
