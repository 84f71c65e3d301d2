// Llama 2, Llama 3 / 3.1 and SmolLM2: pre-RMSNorm, GQA attention with RoPE, SwiGLU MLP.
#include "runtime/models/arch.h"

namespace tessera {

const ArchSpec& LlamaArch() {
  static const ArchSpec spec{
      .gguf_name = "llama",
      .hf_types = {"llama"},
      .gguf_rope = kernels::RopeLayout::kAdjacentPairs,
  };
  return spec;
}

}  // namespace tessera
