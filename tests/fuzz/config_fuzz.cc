// Fuzz target: config.json and generation_config.json as a Hugging Face checkpoint reads
// them (runtime/model/hf_checkpoint.h ParseJsonObject), then config.json into a ModelConfig
// (runtime/model/model_config.h ConfigFromHf). The input is parsed both ways.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/model/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto j = tessera::ParseJsonObject(text, "fuzz/config.json");
  if (!j.ok()) return 0;
  auto config = tessera::ConfigFromHf(*j, "fuzz/config.json");
  if (config.ok() && (config->n_layers <= 0 || config->n_heads % config->n_kv_heads != 0)) {
    __builtin_trap();  // CheckShape promises these
  }
  // A config that validates has a RoPE scaling the kernels can apply: finite, positive
  // frequencies and a finite cos/sin factor (YaRN's come from outside, through the config).
  if (config.ok() && config->head_dim <= 4096) {
    auto scaling = tessera::RopeScalingOf(*config);
    if (scaling.ok()) {
      if (!(std::isfinite(scaling->attention_factor) && scaling->attention_factor > 0)) __builtin_trap();
      for (double f : tessera::kernels::RopeInvFreq(config->head_dim,
                                                     static_cast<float>(config->rope_theta), *scaling)) {
        if (!(std::isfinite(f) && f > 0)) __builtin_trap();
      }
    }
  }
  return 0;
}
