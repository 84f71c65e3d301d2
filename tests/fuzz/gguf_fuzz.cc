// Fuzz target: GGUF parser (runtime/model/gguf.h), then everything a loader reads from a
// parsed file: every metadata value, every tensor info, one dequantized row of each tensor,
// and the model config. Any input must give a Status or a file, never a crash.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/dequant.h"
#include "kernels/dtype.h"
#include "runtime/model/gguf.h"
#include "runtime/model/model_config.h"

namespace {

// Touches every value so that sanitizers see each read; the sum keeps it from being elided.
size_t Walk(const tessera::gguf::Value& v) {
  size_t n = v.ToString().size();
  if (auto i = v.AsInt()) n += static_cast<size_t>(*i);
  if (auto f = v.AsFloat()) n += *f > 0;
  if (auto b = v.AsBool()) n += *b;
  if (auto s = v.AsString()) n += s->size();
  for (const tessera::gguf::Value& item : v.items()) n += Walk(item);
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = tessera::gguf::GgufFile::Parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
  if (!file.ok()) return 0;
  const tessera::gguf::GgufFile& f = **file;
  volatile size_t sink = 0;
  for (const auto& [key, value] : f.metadata()) {
    sink = sink + key.size() + Walk(value);
    if (f.Find(key) == nullptr) __builtin_trap();  // every key must be found again
  }
  std::vector<float> row;
  for (const tessera::TensorInfo& t : f.tensors()) {
    if (f.FindTensor(t.name) == nullptr) __builtin_trap();
    if (t.shape.empty()) continue;
    const int64_t n = t.shape.back();  // innermost: one row
    const std::optional<int64_t> bytes = tessera::kernels::BytesFor(t.type, n);
    if (!bytes || *bytes > static_cast<int64_t>(t.data.size())) continue;
    row.resize(static_cast<size_t>(n));
    tessera::kernels::DequantizeRow(row.data(), t.data.data(), t.type, n);
    for (float x : row) sink = sink + (x == x);
  }
  (void)tessera::ConfigFromGguf(f);
  (void)sink;
  return 0;
}
