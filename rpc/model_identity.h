// What a coordinator and its replicas agree on before any request flows: the model's name,
// a checksum of its files and the shape a request is validated against.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/model/model_source.h"

namespace tessera::rpc {

// The Replica stream's protocol; a worker announcing another is refused.
inline constexpr uint32_t kProtocolVersion = 1;

struct ModelIdentity {
  std::string name;          // what clients ask for (GenerateRequest.model)
  std::string checksum;      // of the model's files (ModelChecksum)
  std::string architecture;  // GGUF spelling ("llama", "qwen2", ...)
  int32_t context = 0;       // tokens of prompt + output one request may hold
  int32_t vocab = 0;
};

// A checksum of the model's files (the GGUF file, or every regular file of a Hugging Face
// folder in name order): CRC-32 over each file's name, size and its first and last 4 MiB,
// as 8 hex digits. Cheap on any model size; it tells different files apart, not a
// tampered middle.
absl::StatusOr<std::string> ModelChecksum(const ModelSource& source);

// The identity of `source` served as `name` (empty: the file or folder name, without
// ".gguf"). FAILED_PRECONDITION for a folder without a model config.
absl::StatusOr<ModelIdentity> IdentifyModel(const ModelSource& source, std::string name);

}  // namespace tessera::rpc
