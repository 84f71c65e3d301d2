// Qwen2 / Qwen2.5: Llama with biases on the Q, K and V projections; GGUF weights are not
// permuted, so RoPE rotates halves in both formats.
#include "runtime/models/arch.h"

namespace tessera {

const ArchSpec& Qwen2Arch() {
  static const ArchSpec spec{
      .gguf_name = "qwen2",
      .hf_types = {"qwen2"},
      .qkv_bias = true,
      .gguf_rope = kernels::RopeLayout::kRotateHalf,
  };
  return spec;
}

}  // namespace tessera
