#include "runtime/model/gguf.h"

#include <limits>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/io/byte_reader.h"

namespace tessera::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxDims = 4;              // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 4;
constexpr uint64_t kMaxKeyBytes = 65536;

// Decoded metadata costs more than its encoding (a Value per array element: ~56 bytes for
// a 1-byte u8), so a small file could claim gigabytes. Legitimate metadata (a 150k-token
// vocabulary: tokens, scores, types, merges, ~35 MiB decoded) fits well within this.
uint64_t MetadataMemoryLimit(uint64_t file_size) {
  constexpr uint64_t kFixed = uint64_t{64} << 20;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  return file_size > (kMax - kFixed) / 16 ? kMax : 16 * file_size + kFixed;
}
// What one key/value or tensor info costs beyond its Value: the key (in the entry and the
// index), the map node and the vector slot, roughly.
constexpr uint64_t kEntryOverhead = 128;

// ggml_type ids (ggml.h) of the tensor types we read.
std::optional<kernels::DType> DTypeFromGgml(uint32_t id) {
  switch (id) {
    case 0: return kernels::DType::kF32;
    case 1: return kernels::DType::kF16;
    case 2: return kernels::DType::kQ4_0;
    case 3: return kernels::DType::kQ4_1;
    case 6: return kernels::DType::kQ5_0;
    case 7: return kernels::DType::kQ5_1;
    case 8: return kernels::DType::kQ8_0;
    case 10: return kernels::DType::kQ2_K;
    case 11: return kernels::DType::kQ3_K;
    case 12: return kernels::DType::kQ4_K;
    case 13: return kernels::DType::kQ5_K;
    case 14: return kernels::DType::kQ6_K;
    case 20: return kernels::DType::kIQ4_NL;
    case 23: return kernels::DType::kIQ4_XS;
    case 30: return kernels::DType::kBF16;
    default: return std::nullopt;
  }
}

// Names of ggml types we know of but do not read, for a helpful error.
std::string GgmlTypeName(uint32_t id) {
  static constexpr const char* kNames[] = {
      "F32",  "F16",  "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0",    "Q5_1",   "Q8_0",   "Q8_1",
      "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
      "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16"};
  if (id < std::size(kNames)) return absl::StrCat(kNames[id], " (", id, ")");
  return absl::StrCat("unknown type ", id);
}

// Smallest encoded size of one value of type t, used to cap counts before allocating.
uint64_t MinEncodedSize(ValueType t) {
  switch (t) {
    case ValueType::kU8:
    case ValueType::kI8:
    case ValueType::kBool: return 1;
    case ValueType::kU16:
    case ValueType::kI16: return 2;
    case ValueType::kU32:
    case ValueType::kI32:
    case ValueType::kF32: return 4;
    case ValueType::kU64:
    case ValueType::kI64:
    case ValueType::kF64:
    case ValueType::kString: return 8;  // the length prefix
    case ValueType::kArray: return 12;  // element type + count
  }
  return 1;
}

bool KnownValueType(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::kF64); }

}  // namespace

// Parses one file; friend of GgufFile and Value. Every error is prefixed with the name.
class Parser {
 public:
  Parser(std::span<const uint8_t> bytes, GgufFile& out)
      : bytes_(bytes), r_(bytes), out_(out), memory_limit_(MetadataMemoryLimit(bytes.size())) {}

  absl::Status Run() {
    out_.file_size_ = r_.remaining();
    auto magic = r_.Read<uint32_t>("magic");
    if (!magic.ok()) return Fail(magic.status());
    if (*magic != kMagic) return Fail("not a GGUF file (bad magic)");
    auto version = r_.Read<uint32_t>("version");
    if (!version.ok()) return Fail(version.status());
    if (*version != 2 && *version != 3) {
      return Fail(absl::StrCat("unsupported GGUF version ", *version, " (need 2 or 3)"));
    }
    out_.version_ = *version;
    auto n_tensors = r_.Read<uint64_t>("tensor count");
    if (!n_tensors.ok()) return Fail(n_tensors.status());
    auto n_kv = r_.Read<uint64_t>("metadata count");
    if (!n_kv.ok()) return Fail(n_kv.status());
    // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor
    // info at least 8 + 4 + 4 + 8. Counts beyond what the file can hold are lies.
    if (*n_kv > r_.remaining() / 13) {
      return Fail(absl::StrCat("metadata count ", *n_kv, " exceeds what ", r_.remaining(),
                               " remaining bytes can hold"));
    }
    if (*n_tensors > r_.remaining() / 24) {
      return Fail(absl::StrCat("tensor count ", *n_tensors, " exceeds what ", r_.remaining(),
                               " remaining bytes can hold"));
    }
    if (absl::Status s = Charge(*n_kv, sizeof(std::pair<std::string, Value>) + kEntryOverhead,
                                "metadata", "entries");
        !s.ok()) {
      return Fail(s);
    }
    out_.metadata_.reserve(*n_kv);
    for (uint64_t i = 0; i < *n_kv; ++i) {
      if (absl::Status s = ReadKeyValue(i); !s.ok()) return s;
    }
    if (absl::Status s = ReadAlignment(); !s.ok()) return s;
    if (absl::Status s = Charge(*n_tensors, sizeof(TensorInfo) + kEntryOverhead, "tensor infos",
                                "tensors");
        !s.ok()) {
      return Fail(s);
    }
    out_.tensors_.reserve(*n_tensors);
    for (uint64_t i = 0; i < *n_tensors; ++i) {
      if (absl::Status s = ReadTensorInfo(i); !s.ok()) return s;
    }
    return PlaceTensorData();
  }

 private:
  absl::Status Fail(absl::string_view msg) const {
    return absl::InvalidArgumentError(absl::StrCat(out_.name_, ": ", msg));
  }
  absl::Status Fail(const absl::Status& s) const {
    return absl::Status(s.code(), absl::StrCat(out_.name_, ": ", s.message()));
  }

  // Counts `count` items of `item_bytes` each against the decoded-memory limit.
  absl::Status Charge(uint64_t count, uint64_t item_bytes, absl::string_view what,
                      absl::string_view items) {
    const uint64_t left = memory_limit_ - charged_;
    if (count > left / item_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          what, ": ", count, " ", items, " would take ", count, " x ", item_bytes,
          " bytes of memory, over the metadata limit of ", memory_limit_,
          " bytes (16 x the file size + 64 MiB, ", left, " left)"));
    }
    charged_ += count * item_bytes;
    return absl::OkStatus();
  }

  absl::StatusOr<absl::string_view> ReadString(absl::string_view what, uint64_t max_len) {
    auto len = r_.Read<uint64_t>(what);
    if (!len.ok()) return len.status();
    if (*len > max_len) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": length ", *len, " exceeds limit ", max_len));
    }
    return r_.ReadBytes(*len, what);
  }

  absl::StatusOr<Value> ReadValue(ValueType type, const std::string& what, int depth) {
    Value v;
    v.type_ = type;
    switch (type) {
      case ValueType::kU8: return Num<uint8_t>(v, what);
      case ValueType::kI8: return Num<int8_t>(v, what);
      case ValueType::kU16: return Num<uint16_t>(v, what);
      case ValueType::kI16: return Num<int16_t>(v, what);
      case ValueType::kU32: return Num<uint32_t>(v, what);
      case ValueType::kI32: return Num<int32_t>(v, what);
      case ValueType::kU64: return Num<uint64_t>(v, what);
      case ValueType::kI64: return Num<int64_t>(v, what);
      case ValueType::kF32: return Num<float>(v, what);
      case ValueType::kF64: return Num<double>(v, what);
      case ValueType::kBool: {
        auto b = r_.Read<uint8_t>(what);
        if (!b.ok()) return b.status();
        if (*b > 1) {
          return absl::InvalidArgumentError(absl::StrCat(what, ": bool value ", int{*b}));
        }
        v.num_.u = *b;
        return v;
      }
      case ValueType::kString: {
        auto s = ReadString(what, r_.remaining());
        if (!s.ok()) return s.status();
        v.str_ = *s;
        return v;
      }
      case ValueType::kArray: {
        if (depth >= kMaxArrayDepth) {
          return absl::InvalidArgumentError(absl::StrCat(what, ": arrays nested too deep"));
        }
        auto elem = r_.Read<uint32_t>(what);
        if (!elem.ok()) return elem.status();
        if (!KnownValueType(*elem)) {
          return absl::InvalidArgumentError(
              absl::StrCat(what, ": unknown array element type ", *elem));
        }
        v.elem_type_ = static_cast<ValueType>(*elem);
        auto count = r_.Read<uint64_t>(what);
        if (!count.ok()) return count.status();
        if (*count > r_.remaining() / MinEncodedSize(v.elem_type_)) {
          return absl::InvalidArgumentError(absl::StrCat(what, ": array count ", *count,
                                                         " exceeds the bytes left (",
                                                         r_.remaining(), ")"));
        }
        if (absl::Status s = Charge(*count, sizeof(Value), what,
                                    absl::StrCat(ValueTypeName(v.elem_type_), " elements"));
            !s.ok()) {
          return s;
        }
        v.items_.reserve(*count);
        for (uint64_t i = 0; i < *count; ++i) {
          auto item = ReadValue(v.elem_type_, what, depth + 1);
          if (!item.ok()) return item.status();
          v.items_.push_back(std::move(*item));
        }
        return v;
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(what, ": unknown value type"));
  }

  template <typename T>
  absl::StatusOr<Value> Num(Value& v, absl::string_view what) {
    auto x = r_.Read<T>(what);
    if (!x.ok()) return x.status();
    if constexpr (std::is_floating_point_v<T>) {
      v.num_.f = *x;
    } else if constexpr (std::is_signed_v<T>) {
      v.num_.i = *x;
    } else {
      v.num_.u = *x;
    }
    return std::move(v);
  }

  absl::Status ReadKeyValue(uint64_t index) {
    auto key = ReadString(absl::StrCat("metadata key #", index), kMaxKeyBytes);
    if (!key.ok()) return Fail(key.status());
    const std::string what = absl::StrCat("metadata key ", *key);
    if (key->empty()) return Fail(absl::StrCat("metadata key #", index, " is empty"));
    auto type = r_.Read<uint32_t>(what);
    if (!type.ok()) return Fail(type.status());
    if (!KnownValueType(*type)) return Fail(absl::StrCat(what, ": unknown value type ", *type));
    auto value = ReadValue(static_cast<ValueType>(*type), what, 0);
    if (!value.ok()) return Fail(value.status());
    if (!out_.metadata_index_.emplace(std::string(*key), out_.metadata_.size()).second) {
      return Fail(absl::StrCat(what, ": duplicate key"));
    }
    out_.metadata_.emplace_back(std::string(*key), std::move(*value));
    return absl::OkStatus();
  }

  absl::Status ReadAlignment() {
    const Value* a = out_.Find("general.alignment");
    if (a == nullptr) return absl::OkStatus();
    const std::optional<int64_t> v = a->AsInt();
    if (!v || *v <= 0 || (*v & (*v - 1)) != 0 || *v > (1 << 30)) {
      return Fail(absl::StrCat("general.alignment must be a power of two, found ",
                               a->ToString()));
    }
    out_.alignment_ = static_cast<uint64_t>(*v);
    return absl::OkStatus();
  }

  absl::Status ReadTensorInfo(uint64_t index) {
    auto name = ReadString(absl::StrCat("tensor #", index, " name"), kMaxKeyBytes);
    if (!name.ok()) return Fail(name.status());
    TensorInfo t;
    t.name = std::string(*name);
    const std::string what = absl::StrCat("tensor ", t.name);
    auto n_dims = r_.Read<uint32_t>(what);
    if (!n_dims.ok()) return Fail(n_dims.status());
    if (*n_dims == 0 || *n_dims > kMaxDims) {
      return Fail(absl::StrCat(what, ": ", *n_dims, " dimensions (must be 1..", kMaxDims, ")"));
    }
    std::vector<int64_t> ne(*n_dims);  // innermost first, as GGUF stores them
    int64_t elements = 1;
    for (uint32_t d = 0; d < *n_dims; ++d) {
      auto dim = r_.Read<uint64_t>(what);
      if (!dim.ok()) return Fail(dim.status());
      if (*dim == 0 || *dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          static_cast<int64_t>(*dim) > std::numeric_limits<int64_t>::max() / elements) {
        return Fail(absl::StrCat(what, ": dimension ", d, " = ", *dim,
                                 " is zero or overflows the element count"));
      }
      ne[d] = static_cast<int64_t>(*dim);
      elements *= ne[d];
    }
    auto type = r_.Read<uint32_t>(what);
    if (!type.ok()) return Fail(type.status());
    const std::optional<kernels::DType> dtype = DTypeFromGgml(*type);
    if (!dtype) {
      return Fail(absl::StrCat(what, ": tensor type ", GgmlTypeName(*type), " is not supported"));
    }
    t.type = *dtype;
    const kernels::DTypeInfo info = kernels::Info(t.type);
    if (ne[0] % info.block_elems != 0) {
      return Fail(absl::StrCat(what, ": row length ", ne[0], " is not a multiple of the ",
                               info.name, " block size ", info.block_elems));
    }
    const std::optional<int64_t> bytes = kernels::BytesFor(t.type, elements);
    if (!bytes) return Fail(absl::StrCat(what, ": byte size overflows"));
    t.bytes = *bytes;
    t.elements = elements;
    auto offset = r_.Read<uint64_t>(what);
    if (!offset.ok()) return Fail(offset.status());
    if (*offset % out_.alignment_ != 0) {
      return Fail(absl::StrCat(what, ": data offset ", *offset, " is not aligned to ",
                               out_.alignment_));
    }
    t.file_offset = *offset;  // relative for now; PlaceTensorData makes it absolute
    t.shape.assign(ne.rbegin(), ne.rend());
    if (!out_.tensor_index_.emplace(t.name, out_.tensors_.size()).second) {
      return Fail(absl::StrCat(what, ": duplicate tensor name"));
    }
    out_.tensors_.push_back(std::move(t));
    return absl::OkStatus();
  }

  absl::Status PlaceTensorData() {
    const uint64_t size = out_.file_size_;
    uint64_t data_start = r_.offset();
    const uint64_t pad = (out_.alignment_ - data_start % out_.alignment_) % out_.alignment_;
    data_start += pad;
    if (out_.tensors_.empty()) return absl::OkStatus();  // vocab-only files may end early
    if (data_start > size) {
      return Fail(absl::StrCat("tensor data section starts at ", data_start,
                               ", past the end of the file (", size, ")"));
    }
    const uint64_t data_size = size - data_start;
    const uint8_t* base = bytes_.data();
    for (TensorInfo& t : out_.tensors_) {
      const uint64_t rel = t.file_offset;
      const uint64_t bytes = static_cast<uint64_t>(t.bytes);
      if (rel > data_size || bytes > data_size - rel) {
        return Fail(absl::StrCat("tensor ", t.name, ": offset ", data_start + rel, " + ", bytes,
                                 " bytes runs past end of file (", size, ")"));
      }
      t.file_offset = data_start + rel;
      t.data = {base + t.file_offset, bytes};
    }
    return absl::OkStatus();
  }

  std::span<const uint8_t> bytes_;
  ByteReader r_;
  GgufFile& out_;
  const uint64_t memory_limit_;  // MetadataMemoryLimit of the file
  uint64_t charged_ = 0;         // decoded bytes counted so far
};

absl::string_view ValueTypeName(ValueType t) {
  switch (t) {
    case ValueType::kU8: return "u8";
    case ValueType::kI8: return "i8";
    case ValueType::kU16: return "u16";
    case ValueType::kI16: return "i16";
    case ValueType::kU32: return "u32";
    case ValueType::kI32: return "i32";
    case ValueType::kF32: return "f32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kU64: return "u64";
    case ValueType::kI64: return "i64";
    case ValueType::kF64: return "f64";
  }
  return "?";
}

std::optional<int64_t> Value::AsInt() const {
  switch (type_) {
    case ValueType::kU8:
    case ValueType::kU16:
    case ValueType::kU32:
    case ValueType::kU64:
      if (num_.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return static_cast<int64_t>(num_.u);
    case ValueType::kI8:
    case ValueType::kI16:
    case ValueType::kI32:
    case ValueType::kI64: return num_.i;
    case ValueType::kF32:
    case ValueType::kF64:
    case ValueType::kBool:
    case ValueType::kString:
    case ValueType::kArray: return std::nullopt;
  }
  return std::nullopt;
}

std::optional<double> Value::AsFloat() const {
  if (type_ == ValueType::kF32 || type_ == ValueType::kF64) return num_.f;
  if (type_ == ValueType::kU64) return static_cast<double>(num_.u);
  if (std::optional<int64_t> i = AsInt()) return static_cast<double>(*i);
  return std::nullopt;
}

std::optional<bool> Value::AsBool() const {
  if (type_ != ValueType::kBool) return std::nullopt;
  return num_.u != 0;
}

std::optional<absl::string_view> Value::AsString() const {
  if (type_ != ValueType::kString) return std::nullopt;
  return str_;
}

std::string Value::ToString(size_t max_items) const {
  switch (type_) {
    case ValueType::kString: {
      std::string s(str_.substr(0, 200));
      if (str_.size() > 200) absl::StrAppend(&s, "…");
      return absl::StrCat("\"", s, "\"");
    }
    case ValueType::kBool: return num_.u ? "true" : "false";
    case ValueType::kF32:
    case ValueType::kF64: return absl::StrCat(num_.f);
    case ValueType::kU64: return absl::StrCat(num_.u);
    case ValueType::kArray: {
      std::vector<std::string> parts;
      for (size_t i = 0; i < items_.size() && i < max_items; ++i) {
        parts.push_back(items_[i].ToString(max_items));
      }
      if (items_.size() > max_items) parts.push_back(absl::StrCat("… (", items_.size(), " items)"));
      return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
    }
    case ValueType::kU8:
    case ValueType::kI8:
    case ValueType::kU16:
    case ValueType::kI16:
    case ValueType::kU32:
    case ValueType::kI32:
    case ValueType::kI64: return absl::StrCat(*AsInt());
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  auto mapping = MappedFile::Open(path);
  if (!mapping.ok()) return mapping.status();
  auto file = Parse((*mapping)->bytes(), path);
  if (!file.ok()) return file.status();
  (*file)->mapping_ = std::move(*mapping);
  return file;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(std::span<const uint8_t> bytes,
                                                          std::string name) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->name_ = std::move(name);
  Parser parser(bytes, *file);
  if (absl::Status s = parser.Run(); !s.ok()) return s;
  return file;
}

const Value* GgufFile::Find(absl::string_view key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

const TensorInfo* GgufFile::FindTensor(absl::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
absl::Status KeyError(const GgufFile& f, absl::string_view key, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(f.name(), ": metadata key ", key, ": ", problem));
}
}  // namespace

absl::StatusOr<int64_t> GgufFile::GetInt(absl::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return KeyError(*this, key, "missing");
  if (auto i = v->AsInt()) return *i;
  return KeyError(*this, key,
                  absl::StrCat("expected an integer, found ", ValueTypeName(v->type())));
}

absl::StatusOr<double> GgufFile::GetFloat(absl::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return KeyError(*this, key, "missing");
  if (auto f = v->AsFloat()) return *f;
  return KeyError(*this, key, absl::StrCat("expected a number, found ", ValueTypeName(v->type())));
}

absl::StatusOr<absl::string_view> GgufFile::GetString(absl::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return KeyError(*this, key, "missing");
  if (auto s = v->AsString()) return *s;
  return KeyError(*this, key, absl::StrCat("expected a string, found ", ValueTypeName(v->type())));
}

absl::StatusOr<bool> GgufFile::GetBool(absl::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return KeyError(*this, key, "missing");
  if (auto b = v->AsBool()) return *b;
  return KeyError(*this, key, absl::StrCat("expected a bool, found ", ValueTypeName(v->type())));
}

absl::StatusOr<const std::vector<Value>*> GgufFile::GetArray(absl::string_view key,
                                                             ValueType elem_type) const {
  const Value* v = Find(key);
  if (v == nullptr) return KeyError(*this, key, "missing");
  if (!v->is_array()) {
    return KeyError(*this, key, absl::StrCat("expected an array, found ", ValueTypeName(v->type())));
  }
  if (v->elem_type() != elem_type) {
    return KeyError(*this, key, absl::StrCat("expected an array of ", ValueTypeName(elem_type),
                                             ", found an array of ",
                                             ValueTypeName(v->elem_type())));
  }
  return &v->items();
}

}  // namespace tessera::gguf
