#include "runtime/model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace tessera {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100 << 20;  // the safetensors library's own limit

using json = nlohmann::json;

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  auto mapping = MappedFile::Open(path);
  if (!mapping.ok()) return mapping.status();
  auto file = Parse((*mapping)->bytes(), path);
  if (!file.ok()) return file.status();
  (*file)->mapping_ = std::move(*mapping);
  return file;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Parse(
    std::span<const uint8_t> bytes, std::string name) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->name_ = std::move(name);
  if (absl::Status s = file->ParseHeader(bytes); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(file->name_, ": ", s.message()));
  }
  return file;
}

absl::Status SafetensorsFile::ParseHeader(std::span<const uint8_t> bytes) {
  if (bytes.size() < 8) {
    return absl::DataLossError(absl::StrCat("file of ", bytes.size(),
                                            " bytes is too short for a safetensors header"));
  }
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  if (header_len > kMaxHeaderBytes || header_len > bytes.size() - 8) {
    return absl::InvalidArgumentError(absl::StrCat("header length ", header_len,
                                                   " exceeds the file (", bytes.size(),
                                                   " bytes) or the 100 MiB limit"));
  }
  const auto* text = reinterpret_cast<const char*>(bytes.data() + 8);
  // nlohmann keeps the last of duplicate keys silently; count top-level keys ourselves.
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t on_key = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && parsed.is_string()) {
      if (!seen.insert(parsed.get<std::string>()).second && duplicate.empty()) {
        duplicate = parsed.get<std::string>();
      }
    }
    return true;
  };
  json header = json::parse(text, text + header_len, on_key, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::InvalidArgumentError("header is not a valid JSON object");
  }
  if (!duplicate.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", duplicate, ": duplicate name"));
  }
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = bytes.size() - data_start;
  for (const auto& [key, entry] : header.items()) {
    if (key == "__metadata__") {
      if (!entry.is_object()) return absl::InvalidArgumentError("__metadata__ is not an object");
      for (const auto& [mk, mv] : entry.items()) {
        if (!mv.is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat("__metadata__ value for ", mk, " is not a string"));
        }
        metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    const std::string what = absl::StrCat("tensor ", key);
    if (!entry.is_object()) return absl::InvalidArgumentError(what + ": entry is not an object");
    auto dtype_it = entry.find("dtype");
    auto shape_it = entry.find("shape");
    auto offsets_it = entry.find("data_offsets");
    if (dtype_it == entry.end() || !dtype_it->is_string()) {
      return absl::InvalidArgumentError(what + ": missing or non-string dtype");
    }
    if (shape_it == entry.end() || !shape_it->is_array()) {
      return absl::InvalidArgumentError(what + ": missing or non-array shape");
    }
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
        !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
      return absl::InvalidArgumentError(what + ": data_offsets must be two unsigned integers");
    }
    TensorInfo t;
    t.name = key;
    const std::string dtype = dtype_it->get<std::string>();
    const std::optional<kernels::DType> type = kernels::DTypeFromName(dtype);
    if (!type || kernels::Info(*type).quantized) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": dtype ", dtype, " is not supported (F32, F16 and BF16 are)"));
    }
    t.type = *type;
    if (shape_it->size() > 8) return absl::InvalidArgumentError(what + ": more than 8 dimensions");
    int64_t elements = 1;
    for (const json& d : *shape_it) {
      if (!d.is_number_unsigned()) {
        return absl::InvalidArgumentError(what + ": shape entries must be non-negative integers");
      }
      const uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (dim != 0 && elements > std::numeric_limits<int64_t>::max() / static_cast<int64_t>(dim))) {
        return absl::InvalidArgumentError(what + ": shape overflows the element count");
      }
      t.shape.push_back(static_cast<int64_t>(dim));
      elements *= static_cast<int64_t>(dim);
    }
    const std::optional<int64_t> nbytes = kernels::BytesFor(t.type, elements);
    if (!nbytes) return absl::InvalidArgumentError(what + ": byte size overflows");
    const uint64_t begin = (*offsets_it)[0].get<uint64_t>();
    const uint64_t end = (*offsets_it)[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": data_offsets [", begin, ", ", end, ") run past the ", data_size,
                       " data bytes of the file"));
    }
    if (end - begin != static_cast<uint64_t>(*nbytes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": data_offsets span ", end - begin, " bytes but shape and dtype ", dtype,
          " need ", *nbytes));
    }
    t.elements = elements;
    t.bytes = *nbytes;
    t.file_offset = data_start + begin;
    t.data = bytes.subspan(t.file_offset, t.bytes);
    tensors_.push_back(std::move(t));
  }
  std::sort(tensors_.begin(), tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.file_offset < b.file_offset; });
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (i > 0 && tensors_[i].bytes > 0 &&
        tensors_[i].file_offset < tensors_[i - 1].file_offset + tensors_[i - 1].bytes) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", tensors_[i].name,
                                                     ": data overlaps tensor ",
                                                     tensors_[i - 1].name));
    }
    index_.emplace(tensors_[i].name, i);
  }
  return absl::OkStatus();
}

const TensorInfo* SafetensorsFile::FindTensor(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace tessera
