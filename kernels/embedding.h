// Token embedding lookup: out[t] = dequantize(table[ids[t]]).
//
// Dims: T tokens, V vocabulary, H hidden.
//   out [T, H] f32    table [V, H] of any DType    ids [T]
// Contract: every ids[t] is in [0, V). The caller checks this (token ids come from
// requests and tokenizers, so they are validated where they enter, with a Status); the
// kernel only CHECKs it as our own invariant. Only the rows used are dequantized.
// Thread-safe for distinct outputs.
#pragma once

#include <cstdint>

#include "kernels/tensor.h"

namespace tessera::kernels {

void EmbeddingLookup(Tensor out, ConstTensor table, const int32_t* ids, int64_t T);
// Dequantizes the whole table, then copies rows: the obvious definition, for tests.
void EmbeddingLookupReference(Tensor out, ConstTensor table, const int32_t* ids, int64_t T);

}  // namespace tessera::kernels
