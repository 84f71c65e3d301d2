// Qwen3 (dense): Llama with per-head RMSNorm of q and k (qk-norm) before RoPE and no QKV
// bias; GGUF weights are not permuted, so RoPE rotates halves in both formats.
#include "runtime/models/arch.h"

namespace tessera {

const ArchSpec& Qwen3Arch() {
  static const ArchSpec spec{
      .gguf_name = "qwen3",
      .hf_types = {"qwen3"},
      .gguf_rope = kernels::RopeLayout::kRotateHalf,
      .qk_norm = true,
  };
  return spec;
}

}  // namespace tessera
