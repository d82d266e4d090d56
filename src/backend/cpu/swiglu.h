// The gated activation of the Llama MLP, as transformers' LlamaMLP computes it:
//
//   h = silu(gate) · up,   silu(g) = g · σ(g) = g / (1 + exp(-g))      (torch's formula)
//
// with gate = gate_proj(x) and up = up_proj(x), all [tokens, intermediate_size]; down_proj(h)
// follows. Backward (σ = σ(gate)):
//
//   dgate = dh · up · σ · (1 + gate · (1 - σ))      (torch's silu_backward)
//   dup   = dh · silu(gate)
//
// Element-wise, so the ops take the element count n = tokens · intermediate_size.
#pragma once

#include <cstdint>

namespace ll::cpu {

// h[n] = silu(gate[n]) · up[n]. `h` may be `gate` or `up` (in place).
template <typename T>
void swiglu_forward(T* h, const T* gate, const T* up, int64_t n);

// dgate[n], dup[n] from dh[n] and the forward's inputs. Writes (does not accumulate). Each
// element's inputs are read before its outputs are written, so `dgate` may be `gate` and
// `dup` may be `up` (saving two buffers when the activations are not needed afterwards).
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n);

}  // namespace ll::cpu
