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
uint16_t FloatToHalf(float f);  // round to nearest even; for tests and writers

}  // namespace tessera::kernels
