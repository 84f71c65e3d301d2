#include "rpc/model_identity.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace tessera::rpc {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kSampleBytes = 4 << 20;

uLong Update(uLong crc, const void* data, size_t n) {
  return crc32(crc, static_cast<const Bytef*>(data), static_cast<uInt>(n));
}

absl::Status AddFile(const fs::path& path, uLong* crc) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(path.string(), ": ", ec.message()));
  const std::string name = path.filename().string();
  *crc = Update(*crc, name.data(), name.size());
  *crc = Update(*crc, &size, sizeof(size));
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open for reading"));
  std::vector<char> buf(std::min(size, kSampleBytes));
  auto sample = [&](uint64_t at) -> absl::Status {
    in.seekg(static_cast<std::streamoff>(at));
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (!in) return absl::DataLossError(absl::StrCat(path.string(), ": read error"));
    *crc = Update(*crc, buf.data(), buf.size());
    return absl::OkStatus();
  };
  if (absl::Status s = sample(0); !s.ok()) return s;
  if (size > kSampleBytes) return sample(size - kSampleBytes);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ModelChecksum(const ModelSource& source) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const fs::path root(source.path());
  if (source.format() == ModelSource::Format::kGguf) {
    if (absl::Status s = AddFile(root, &crc); !s.ok()) return s;
  } else {
    std::vector<fs::path> files;
    std::error_code ec;
    for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
      if (e.is_regular_file()) files.push_back(e.path());
    }
    if (ec) return absl::NotFoundError(absl::StrCat(root.string(), ": ", ec.message()));
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      if (absl::Status s = AddFile(f, &crc); !s.ok()) return s;
    }
  }
  return absl::StrFormat("%08x", static_cast<uint32_t>(crc));
}

absl::StatusOr<ModelIdentity> IdentifyModel(const ModelSource& source, std::string name) {
  const ModelConfig* config = source.config();
  if (config == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(source.path(), ": no model config (a tokenizer-only folder)"));
  }
  absl::StatusOr<std::string> checksum = ModelChecksum(source);
  if (!checksum.ok()) return checksum.status();
  if (name.empty()) {
    std::string stem = fs::path(source.path()).filename().string();
    if (stem.empty()) stem = fs::path(source.path()).parent_path().filename().string();
    name = std::string(absl::StripSuffix(stem, ".gguf"));
  }
  return ModelIdentity{.name = std::move(name),
                       .checksum = *std::move(checksum),
                       .architecture = config->arch,
                       .context = static_cast<int32_t>(config->context),
                       .vocab = static_cast<int32_t>(config->vocab)};
}

}  // namespace tessera::rpc
