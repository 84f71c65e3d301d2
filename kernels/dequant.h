// Conversion of stored weight rows to f32.
//
// Dims: n elements of one row. `src` holds BytesFor(type, n) bytes in the layout of
// kernels/dtype.h; `out` holds n floats. n must be a multiple of the type's block size
// (the caller checks with BytesFor). Pure, thread-safe, no allocation.
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace tessera::kernels {

// out[n] f32 <- src[BytesFor(type, n)] of `type`.
void DequantizeRow(float* out, const void* src, DType type, int64_t n);

// IEEE half and bfloat16 to float.
float HalfToFloat(uint16_t h);
float Bf16ToFloat(uint16_t b);
// Float to half / bfloat16, rounded to nearest even (overflow to inf; NaN stays NaN).
uint16_t FloatToHalf(float f);
uint16_t FloatToBf16(float f);

// The activation-storage types (F32, F16, BF16; a KV cache, say): n floats stored as `type`
// (rounded to nearest even), and n stored values widened back to f32. `dst` / `src` hold
// n elements of `type`, aligned for it. Any other type is F32.
void StoreFloatRow(void* dst, DType type, const float* src, int64_t n);
void LoadFloatRow(float* dst, const void* src, DType type, int64_t n);

}  // namespace tessera::kernels
