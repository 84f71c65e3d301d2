// Gated activations of the MLP.
//
// Dims: T tokens, F intermediate (FFN) size.
//   out [T, F] f32    gate [T, F] f32    up [T, F] f32
// SwiGlu: out = silu(gate) * up, silu(g) = g * sigmoid(g). out may alias gate or up.
// Shapes are CHECKed. Thread-safe for distinct outputs.
#pragma once

#include "kernels/tensor.h"

namespace tessera::kernels {

void SwiGlu(Tensor out, ConstTensor gate, ConstTensor up);
void SwiGluReference(Tensor out, ConstTensor gate, ConstTensor up);

}  // namespace tessera::kernels
