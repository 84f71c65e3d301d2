// Test helper: writes small GGUF v3 files byte by byte, so tests can make valid files and
// then break them in precise ways. Not used by the engine.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace tessera::testing {

class GgufBuilder {
 public:
  explicit GgufBuilder(uint32_t alignment = 32) : alignment_(alignment) {}

  GgufBuilder& KvString(const std::string& key, const std::string& value) {
    Key(key, 8);
    Str(meta_, value);
    ++n_kv_;
    return *this;
  }
  GgufBuilder& KvU32(const std::string& key, uint32_t v) {
    Key(key, 4);
    Pod(meta_, v);
    ++n_kv_;
    return *this;
  }
  GgufBuilder& KvF32(const std::string& key, float v) {
    Key(key, 6);
    Pod(meta_, v);
    ++n_kv_;
    return *this;
  }
  GgufBuilder& KvBool(const std::string& key, bool v) {
    Key(key, 7);
    Pod(meta_, static_cast<uint8_t>(v));
    ++n_kv_;
    return *this;
  }
  GgufBuilder& KvStrings(const std::string& key, const std::vector<std::string>& items) {
    Key(key, 9);
    Pod(meta_, uint32_t{8});
    Pod(meta_, static_cast<uint64_t>(items.size()));
    for (const auto& s : items) Str(meta_, s);
    ++n_kv_;
    return *this;
  }
  GgufBuilder& KvF32s(const std::string& key, const std::vector<float>& items) {
    Key(key, 9);
    Pod(meta_, uint32_t{6});
    Pod(meta_, static_cast<uint64_t>(items.size()));
    for (float f : items) Pod(meta_, f);
    ++n_kv_;
    return *this;
  }
  GgufBuilder& KvU8s(const std::string& key, uint64_t n, uint8_t fill = 1) {
    Key(key, 9);
    Pod(meta_, uint32_t{0});
    Pod(meta_, n);
    meta_.insert(meta_.end(), n, fill);
    ++n_kv_;
    return *this;
  }
  // An array header that claims `count` elements of `elem_type` but holds none.
  GgufBuilder& KvArrayClaiming(const std::string& key, uint32_t elem_type, uint64_t count) {
    Key(key, 9);
    Pod(meta_, elem_type);
    Pod(meta_, count);
    ++n_kv_;
    return *this;
  }
  GgufBuilder& KvI32s(const std::string& key, const std::vector<int32_t>& items) {
    Key(key, 9);
    Pod(meta_, uint32_t{5});
    Pod(meta_, static_cast<uint64_t>(items.size()));
    for (int32_t v : items) Pod(meta_, v);
    ++n_kv_;
    return *this;
  }

  // A tensor with GGUF dims `ne` (innermost first), ggml type id, and raw data bytes.
  GgufBuilder& Tensor(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type,
                      const std::vector<uint8_t>& data) {
    Str(infos_, name);
    Pod(infos_, static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) Pod(infos_, d);
    Pod(infos_, type);
    Pad(data_);
    Pod(infos_, static_cast<uint64_t>(data_.size()));
    data_.insert(data_.end(), data.begin(), data.end());
    ++n_tensors_;
    return *this;
  }

  std::vector<uint8_t> Build() const {
    std::vector<uint8_t> out;
    Pod(out, uint32_t{0x46554747});
    Pod(out, uint32_t{3});
    Pod(out, n_tensors_);
    Pod(out, n_kv_);
    out.insert(out.end(), meta_.begin(), meta_.end());
    out.insert(out.end(), infos_.begin(), infos_.end());
    Pad(out);
    out.insert(out.end(), data_.begin(), data_.end());
    return out;
  }

 private:
  template <typename T>
  static void Pod(std::vector<uint8_t>& v, T x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    v.insert(v.end(), p, p + sizeof(T));
  }
  static void Str(std::vector<uint8_t>& v, const std::string& s) {
    Pod(v, static_cast<uint64_t>(s.size()));
    v.insert(v.end(), s.begin(), s.end());
  }
  void Key(const std::string& key, uint32_t type) {
    Str(meta_, key);
    Pod(meta_, type);
  }
  void Pad(std::vector<uint8_t>& v) const {
    while (v.size() % alignment_ != 0) v.push_back(0);
  }

  uint32_t alignment_;
  uint64_t n_kv_ = 0;
  uint64_t n_tensors_ = 0;
  std::vector<uint8_t> meta_, infos_, data_;
};

}  // namespace tessera::testing
