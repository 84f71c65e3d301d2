// What distinguishes one decoder-only architecture from another, as data: how its tensors
// are named in each file format, which RoPE layout its GGUF weights use, and which
// optional parts it has. The shared transformer (runtime/engine/transformer.h) reads an
// ArchSpec; adding an architecture is one file defining its spec, one registry line in
// registry.cc, and one golden test.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/rope.h"

namespace tessera {

struct TensorNames {
  // Whole-model tensors.
  std::string embedding, final_norm, lm_head;
  // Per-layer tensors: "{}" is replaced by the layer index.
  std::string attn_norm, q, k, v, o, q_bias, k_bias, v_bias, ffn_norm, gate, up, down;
};

struct ArchSpec {
  std::string gguf_name;                 // general.architecture in GGUF ("llama")
  std::vector<std::string> hf_types;     // config.json model_type values ("llama")
  bool qkv_bias = false;                 // Qwen2: biases on the Q, K and V projections
  bool sliding_window = false;           // Mistral: attention limited to a window
  // Layout of the Q/K rows the GGUF converter wrote. llama.cpp permutes llama-family
  // Q/K rows so that rotating adjacent pairs equals Hugging Face's rotate-half; other
  // families (Qwen2) are written unpermuted and rotate halves.
  kernels::RopeLayout gguf_rope = kernels::RopeLayout::kAdjacentPairs;
};

// The standard names of llama.cpp's GGUF converter and of Hugging Face's Llama-family
// checkpoints; architectures change only what differs.
TensorNames GgufTensorNames();
TensorNames HfTensorNames();

// Architecture specs, one per file.
const ArchSpec& LlamaArch();
const ArchSpec& MistralArch();
const ArchSpec& Qwen2Arch();

// The spec for a GGUF general.architecture or an HF model_type; NOT_FOUND lists the known.
absl::StatusOr<const ArchSpec*> FindArch(const std::string& name);

}  // namespace tessera
