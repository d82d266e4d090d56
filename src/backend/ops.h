// The backend-neutral op vocabulary: the types that Backend's ops (backend/backend.h) take,
// shared by every backend. A backend's own folder (backend/cpu/, a device backend's) includes
// this header; this header and backend.h include nothing from a backend's folder.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "core/dtype.h"
#include "core/reduce_op.h"

namespace ll {

enum class Transpose : uint8_t { No, Yes };

// Whether an op writes its output (`No`) or adds to what is there (`Yes`, as a gradient that
// sums contributions from several paths does).
enum class Accumulate : uint8_t { No, Yes };

// What a backend's matrix products compute in (`--bf16`; DESIGN.md "bf16 compute"):
//   Fp32  fp32 operands, fp32 accumulation: the reference path every golden test runs;
//   Bf16  operands rounded to bf16 (round-to-nearest-even), fp32 accumulation, fp32 result:
//         torch's CPU autocast for linear and matmul, without its final rounding of the
//         product to bf16.
// The base linear layers, the LoRA products and the LM head follow it. Attention, RMSNorm,
// softmax, RoPE, the residual sums, the loss, every reduction, the LoRA master weights,
// their gradients and AdamW stay fp32 in both.
enum class Precision : uint8_t { Fp32, Bf16 };
const char* precision_name(Precision precision);  // "fp32" | "bf16"

// Where a buffer or weight lives: host memory (the CPU backend's, and a memory-mapped file)
// or a device's memory.
enum class MemorySpace : uint8_t { Host, Device };

// A frozen base weight as the checkpoint stores it: a row-major matrix (or vector) of f32,
// bf16 or f16 elements. It carries no shape: the op's size arguments say what it is
// (W[out, in] for a linear layer, [vocab, hidden] for an embedding table, [hidden] for a norm
// weight), and the model layer checks those against the safetensors header at load. The CPU
// backend reads host views in place (the mmap); a device backend reads Device views.
struct WeightView {
  const void* data = nullptr;  // row-major, `dtype` elements
  DType dtype = DType::F32;
  MemorySpace space = MemorySpace::Host;
};

// The label of a position without a target (torch's ignore_index).
inline constexpr int32_t kIgnoreLabel = -100;

// One sequence's causal GQA attention (backend/cpu/attention.h states the formulas).
struct AttentionShape {
  int64_t tokens = 0;               // T
  int64_t num_attention_heads = 0;  // query heads
  int64_t num_key_value_heads = 0;  // divides num_attention_heads
  int64_t head_dim = 0;
};

// Attention of the new tokens of one sequence against its KV cache (generation).
struct DecodeAttentionShape {
  int64_t new_tokens = 0;           // m >= 1: the queries
  int64_t past_tokens = 0;          // p0 >= 0: cached positions before the first query
  int64_t num_attention_heads = 0;  // query heads
  int64_t num_key_value_heads = 0;  // divides num_attention_heads
  int64_t head_dim = 0;
};

// Where a tensor sits in the tensor its dropout mask is drawn for: the default is the whole
// tensor (element i uses mask element i). A tensor-parallel rank holding columns
// [col_offset, col_offset + cols) of a [rows, full_cols] activation sets all three, so its
// element (row, c) uses mask element row·full_cols + col_offset + c: the same mask as the
// whole tensor's, whatever the number of ranks.
struct DropoutWindow {
  int64_t cols = 0;  // 0: the whole tensor
  int64_t full_cols = 0;
  int64_t col_offset = 0;

  int64_t mask_index(int64_t i) const {
    return cols == 0 ? i : (i / cols) * full_cols + col_offset + i % cols;
  }
};

// A LoRA branch's input dropout: drop probability, the mask's key, where the input sits in the
// tensor the mask is drawn for.
struct LoraDropout {
  double p = 0.0;
  uint64_t key = 0;
  DropoutWindow window;
};

// rope_scaling {"rope_type": "llama3", ...} of config.json. The model layer maps
// formats/llama_config.h's RopeScaling onto this.
struct RopeLlama3Scaling {
  double factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// What a RoPE table is built from (Backend::build_rope_table).
struct RopeSpec {
  double theta = 10000.0;
  int64_t head_dim = 0;
  int64_t max_positions = 0;
  std::optional<RopeLlama3Scaling> scaling;
};

// cos/sin for positions [0, max_positions), built once by a backend and shared by every
// layer. Positions restart per packed document, so max_positions = the sequence length
// suffices. Today the values are host fp32 (the CPU backend's memory); a device backend keeps
// its copy next to them.
struct RopeTable {
  int64_t head_dim = 0;
  int64_t max_positions = 0;
  std::vector<float> inv_freq;  // [head_dim/2] fp32
  std::vector<float> cos;       // [max_positions, head_dim/2] fp32 (the second half repeats it)
  std::vector<float> sin;       // [max_positions, head_dim/2] fp32
};

// Vocabulary parallelism (Megatron's parallel cross-entropy): each tensor-parallel rank holds
// rows [first, first + vocab) of W_lm out of full_vocab. Per chunk, the row maxima, then the
// Σexp and label logits, are combined over the ranks through `reduce` (a collective: every
// rank calls it the same number of times with the same counts), so every rank gets the whole
// vocabulary's losses; dh is this rank's share, which the caller sums over the ranks. Labels
// are ids of the whole vocabulary. T is the activation type (double in finite-difference
// tests of the CPU ops).
template <typename T>
struct VocabShardOf {
  int64_t first = 0;
  int64_t full_vocab = 0;
  // values[count] = `op` (Max or Sum) over the ranks, in place.
  std::function<void(T* values, int64_t count, ReduceOp op)> reduce;
};
using VocabShard = VocabShardOf<float>;

// AdamW's settings of one step (Backend::adamw_update; backend/cpu/adamw.h states the
// update, torch.optim.AdamW's).
struct AdamWConfig {
  double lr = 1e-3;  // the scheduled learning rate of this step
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

// torch.nn.utils.clip_grad_norm_'s factor: max_norm / (total_norm + 1e-6), applied to the
// gradients only when it is < 1 (then returned as is, else 1).
inline double clip_coefficient(double total_norm, double max_norm) {
  const double coefficient = max_norm / (total_norm + 1e-6);
  return coefficient < 1.0 ? coefficient : 1.0;
}

}  // namespace ll
