// Mistral: Llama with sliding-window attention. llama.cpp writes Mistral GGUFs with
// general.architecture "llama" (and the same Q/K permutation); HF configs say "mistral".
#include "runtime/models/arch.h"

namespace tessera {

const ArchSpec& MistralArch() {
  static const ArchSpec spec{
      .gguf_name = "mistral",
      .hf_types = {"mistral"},
      .sliding_window = true,
      .gguf_rope = kernels::RopeLayout::kAdjacentPairs,
  };
  return spec;
}

}  // namespace tessera
