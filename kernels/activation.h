// Gated activations of the MLP.
//
// Dims: T tokens, F intermediate (FFN) size.
//   out [T, F] f32    gate [T, F] f32    up [T, F] f32
// SwiGlu: out = silu(gate) * up, silu(g) = g * sigmoid(g).
// GeGlu:  out = gelu(gate) * up, gelu's tanh approximation
//         0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) (PyTorch's gelu 'tanh', Gemma's
//         gelu_pytorch_tanh). out may alias gate or up.
// Shapes are CHECKed. Thread-safe for distinct outputs.
#pragma once

#include "kernels/tensor.h"

namespace tessera::kernels {

void SwiGlu(Tensor out, ConstTensor gate, ConstTensor up);
void SwiGluReference(Tensor out, ConstTensor gate, ConstTensor up);
void GeGlu(Tensor out, ConstTensor gate, ConstTensor up);
void GeGluReference(Tensor out, ConstTensor gate, ConstTensor up);

}  // namespace tessera::kernels
