// Rotary position embedding (RoPE), applied in place to the query or key rows.
//
// Dims: T tokens, heads (Hq for q, Hkv for k), D head dim (even; rotary dim = D).
//   qk [T, heads*D] f32, in place    positions [T] (each token's absolute position)
// Pair i (i < D/2) of each head is rotated by angle pos * inv_freq[i], with
// inv_freq[i] = theta^(-2i/D) adjusted by `scaling`:
//   x'_a = x_a cos - x_b sin,   x'_b = x_a sin + x_b cos.
// Which elements form pair i depends on the layout:
//   kAdjacentPairs (GGUF llama weights, llama.cpp's "normal" rope): (x[2i], x[2i+1]);
//   kRotateHalf (Hugging Face / NeoX): (x[i], x[i + D/2]).
// llama.cpp's converter permutes Q/K weight rows so the two describe the same model.
// Angles are computed in double and rounded once to f32 cos/sin.
// Scaling follows transformers' rope_init_fns: kLinear divides inv_freq by `factor`;
// kLlama3 is _compute_llama3_parameters (Llama 3.1): wavelengths above
// original_context/low_freq_factor are divided by `factor`, below
// original_context/high_freq_factor kept, and smoothly interpolated between.
// kYarn is _compute_yarn_parameters (YaRN: DeepSeek-V3, Kimi-K2, Qwen long context): with
// the correction range [lo, hi] of pairs that turn beta_fast and beta_slow times over
// original_context positions (floored and ceiled when `truncate`, clamped to [0, D-1]),
// inv_freq = inv/factor * ramp + inv * (1 - ramp), ramp = clamp((i - lo) / (hi - lo), 0, 1);
// the rotated values are then scaled by attention_factor (as transformers scales cos/sin).
// freq_factors (GGUF's rope_freqs.weight, which llama.cpp's converter writes for Llama 3.x
// instead of the config's scaling): when not empty, D/2 divisors applied to inv_freq after
// `kind`'s scaling, pair by pair.
// Thread-safe for distinct outputs.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/tensor.h"

namespace tessera::kernels {

enum class RopeLayout {
  kAdjacentPairs,  // GGUF llama: (x0,x1), (x2,x3), ...
  kRotateHalf,     // HF / NeoX: (x_i, x_{i+D/2})
};

struct RopeScaling {
  enum Kind { kNone, kLinear, kLlama3, kYarn } kind = kNone;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;   // kLlama3 only
  float high_freq_factor = 4.0f;  // kLlama3 only
  int64_t original_context = 8192;  // kLlama3 and kYarn
  float beta_fast = 32.0f, beta_slow = 1.0f;  // kYarn only
  bool truncate = true;                       // kYarn only
  float attention_factor = 1.0f;              // kYarn: multiplies the rotated values
  std::vector<float> freq_factors = {};  // empty, or D/2 positive divisors
};

void Rope(Tensor qk, const int32_t* positions, int64_t head_dim, float theta, RopeLayout layout,
          const RopeScaling& scaling);
void RopeReference(Tensor qk, const int32_t* positions, int64_t head_dim, float theta,
                   RopeLayout layout, const RopeScaling& scaling);

// inv_freq[D/2] after scaling, in double; exposed for tests and for the CUDA kernel's table.
std::vector<double> RopeInvFreq(int64_t head_dim, float theta, const RopeScaling& scaling);

}  // namespace tessera::kernels
