// Gemma 3 (text): Llama-shaped GQA attention with per-head RMSNorm of q and k, RMSNorm of
// the attention and MLP outputs before each residual add, GeGLU (tanh gelu), embeddings
// scaled by sqrt(hidden), tied LM head. Five local (sliding-window) layers to one global
// layer, each kind with its own RoPE base (10000 local; the config's base, and its scaling,
// global); attention scores scaled by query_pre_attn_scalar^-1/2. Hugging Face norm
// weights hold w for a scale of (1 + w). GGUF weights are not permuted (RoPE rotates
// halves), and llama.cpp's converter writes neither the layer pattern nor the local base,
// so the spec carries llama.cpp's values for them.
#include "runtime/models/arch.h"

namespace tessera {

const ArchSpec& Gemma3Arch() {
  static const ArchSpec spec{
      .gguf_name = "gemma3",
      .hf_types = {"gemma3_text"},
      .gguf_rope = kernels::RopeLayout::kRotateHalf,
      .qk_norm = true,
      .activation = Activation::kGeluTanh,
      .post_norms = true,
      .scale_embedding = true,
      .hf_norm_offset = 1.0f,
      .gguf_sliding_pattern = 6,
      .gguf_local_rope_theta = 10000.0,
  };
  return spec;
}

}  // namespace tessera
