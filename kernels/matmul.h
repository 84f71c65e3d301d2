// Linear-layer matrix multiply: out = x · wᵀ, with w stored in any DType.
//
// Dims: T tokens (rows of x), K input features, N output features.
//   out [T, N] f32    x [T, K] f32    w [N, K] of any DType (row-major, as GGUF and
//   PyTorch store nn.Linear weights); K a whole number of w's blocks.
//
// MatMul is the fast path, and the one the engine uses. Activations stay f32: weights are
// decoded to f32 (AVX2, detected at run time) exactly as the format defines them (Q4_1's
// d·q + m, Q4_K's per-sub-block d·sc·q − dmin·m, ...), so the result equals
// MatMulReference up to f32 rounding and summation order — about 1e-7 relative to |x|·|w|
// per output (tests bound it by 1e-5). For T <= 4 each block is decoded in registers and
// FMA'd straight into per-token accumulators (decode streams w once); for larger T a task's
// tile of w rows (~64 KiB) is dequantized to f32 once and an f32 micro-kernel (4 rows × 3
// tokens) sweeps every token over it, so prefill also reads and decodes w once. Without
// AVX2, tiles are dequantized by the scalar code and dotted in f32 (same error).
//
// MatMulQ8Activations is the llama.cpp-style alternative, kept for comparison: with AVX2 and
// a quantized w, each 32-element block of x is quantized to 8 bits (scale max|x|/127) and
// dotted with the weight blocks in integers. About 1.2-2x faster than MatMul in cache-
// resident decode (fewer instructions per weight), slower in prefill. Its error is about
// 5e-3 of the output norm on random data (up to 2e-3 of |x|·|w| per output; tests bound
// them by 1e-2 and 5e-3) and compounds over layers: on SmolLM2-135M (Q4_1) its top-1 token
// agrees with the exact path at only 95.5% of positions. For F32/F16/BF16 w, or without
// AVX2, it is MatMul.
//
// MatMulReference is the plain definition: dequantize a row of w, f32 dot with each x row.
//
// All three: out must not alias x or w; shapes are CHECKed (a mismatch is a caller bug).
// Work is split over rows of w on the default thread pool; the result does not depend on
// the thread count. Thread-safe for distinct outputs (MatMul keeps a per-thread f32 tile
// buffer; MatMulQ8Activations allocates scratch for the quantized x).
#pragma once

#include "kernels/tensor.h"

namespace tessera::kernels {

void MatMul(Tensor out, ConstTensor x, ConstTensor w);
void MatMulQ8Activations(Tensor out, ConstTensor x, ConstTensor w);
void MatMulReference(Tensor out, ConstTensor x, ConstTensor w);

}  // namespace tessera::kernels
