// A Hugging Face checkpoint directory: config.json, generation_config.json (optional) and
// the weights as model.safetensors or shards listed in model.safetensors.index.json.
//
// Open() reads and checks everything up front: every shard the index names is opened once
// and must contain the tensors the index assigns to it, no tensor may appear twice, and
// errors name the file and the tensor. Immutable after construction; thread-safe reads.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "runtime/model/safetensors.h"

namespace tessera {

class HfCheckpoint {
 public:
  static absl::StatusOr<std::unique_ptr<HfCheckpoint>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  // Empty object when the directory has no generation_config.json.
  const nlohmann::json& generation_config() const { return generation_config_; }

  // All tensors of all shards, in shard order then offset order.
  const std::vector<const TensorInfo*>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(absl::string_view name) const;
  size_t shard_count() const { return shards_.size(); }

 private:
  HfCheckpoint() = default;

  // Immutable after construction.
  std::string dir_;
  nlohmann::json config_;
  nlohmann::json generation_config_ = nlohmann::json::object();
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::vector<const TensorInfo*> tensors_;
  std::map<std::string, const TensorInfo*, std::less<>> index_;
};

// Parses a JSON file into an object, with an error naming the file.
absl::StatusOr<nlohmann::json> ReadJsonObject(const std::string& path);
// The same for text already in memory; `path` names it in errors.
absl::StatusOr<nlohmann::json> ParseJsonObject(absl::string_view text, const std::string& path);

}  // namespace tessera
