// See tensor_parallel.h.
#include "model/tensor_parallel.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include "core/error.h"
#include "model/adapter_shards.h"

namespace ll {
namespace {

constexpr const char* kOrigin = "tensor-parallel";

// Columns [begin, end) of every row of a [rows, cols] weight, copied into `store`.
WeightView copy_columns(WeightView w, int64_t rows, int64_t cols, int64_t begin, int64_t end,
                        std::vector<std::vector<std::byte>>& store) {
  const size_t element = dtype_size(w.dtype);
  const size_t row_bytes = static_cast<size_t>(end - begin) * element;
  auto& copy = store.emplace_back(static_cast<size_t>(rows) * row_bytes);
  const auto* src = static_cast<const std::byte*>(w.data);
  for (int64_t row = 0; row < rows; ++row) {
    std::memcpy(copy.data() + static_cast<size_t>(row) * row_bytes,
                src + (static_cast<size_t>(row * cols + begin)) * element, row_bytes);
  }
  return {copy.data(), w.dtype};
}

// Rows [begin, ...) of a row-major weight with `cols` columns: a view into the same memory.
WeightView offset_rows(WeightView w, int64_t cols, int64_t begin) {
  const auto* src = static_cast<const std::byte*>(w.data);
  return {src + static_cast<size_t>(begin * cols) * dtype_size(w.dtype), w.dtype};
}

}  // namespace

void check_tensor_parallel_size(const LlamaConfig& config, int64_t size) {
  check(size >= 1, kOrigin,
        "--tensor_parallel_size must be at least 1, got " + std::to_string(size));
  const auto divides = [&](int64_t value, const char* field) {
    check(value % size == 0, kOrigin,
          "--tensor_parallel_size " + std::to_string(size) + " does not divide the model's " +
              field + " (" + std::to_string(value) +
              "): every tensor-parallel rank must hold whole heads and an equal part of the MLP");
  };
  divides(config.num_attention_heads, "num_attention_heads");
  divides(config.num_key_value_heads, "num_key_value_heads");
  divides(config.intermediate_size, "intermediate_size");
}

LlamaConfig tensor_parallel_config(const LlamaConfig& config, int64_t size) {
  check_tensor_parallel_size(config, size);
  LlamaConfig local = config;
  local.num_attention_heads /= size;
  local.num_key_value_heads /= size;
  local.intermediate_size /= size;
  return local;
}

LlamaWeights slice_weights_for_tp(const LlamaWeights& full, int64_t rank, int64_t size) {
  const LlamaConfig& c = full.config;
  LlamaWeights local;
  local.config = tensor_parallel_config(c, size);
  check(rank >= 0 && rank < size, kOrigin,
        "rank " + std::to_string(rank) + " is outside 0.." + std::to_string(size - 1));
  local.embed_tokens = full.embed_tokens;
  local.norm = full.norm;
  local.lm_head = full.lm_head;
  if (c.vocab_size % size == 0 && size > 1) {
    local.lm_head_rows = c.vocab_size / size;
    local.lm_head_first = rank * local.lm_head_rows;
    local.lm_head = offset_rows(full.lm_head, c.hidden_size, local.lm_head_first);
  }
  local.storage = full.storage;
  const int64_t hidden = c.hidden_size;
  const int64_t q_out = local.config.num_attention_heads * c.head_dim;
  const int64_t kv_out = local.config.num_key_value_heads * c.head_dim;
  const int64_t inter = local.config.intermediate_size;
  local.layers.reserve(full.layers.size());
  for (const LlamaLayerWeights& w : full.layers) {
    LlamaLayerWeights& l = local.layers.emplace_back(w);
    l.q_proj = offset_rows(w.q_proj, hidden, rank * q_out);
    l.k_proj = offset_rows(w.k_proj, hidden, rank * kv_out);
    l.v_proj = offset_rows(w.v_proj, hidden, rank * kv_out);
    l.gate_proj = offset_rows(w.gate_proj, hidden, rank * inter);
    l.up_proj = offset_rows(w.up_proj, hidden, rank * inter);
    if (w.q_bias.data) {  // a column-parallel output's bias: this rank's rows of it too
      l.q_bias = offset_rows(w.q_bias, 1, rank * q_out);
      l.k_bias = offset_rows(w.k_bias, 1, rank * kv_out);
      l.v_bias = offset_rows(w.v_bias, 1, rank * kv_out);
    }
    l.o_proj = copy_columns(w.o_proj, hidden, q_out * size, rank * q_out, (rank + 1) * q_out,
                            local.realigned);
    l.down_proj = copy_columns(w.down_proj, hidden, inter * size, rank * inter, (rank + 1) * inter,
                               local.realigned);
  }
  return local;
}

LoraAdapter slice_adapter_for_tp(const LoraAdapter& full, int64_t rank, int64_t size) {
  check(size >= 1 && rank >= 0 && rank < size, kOrigin,
        "rank " + std::to_string(rank) + " of " + std::to_string(size) + " is not a valid rank");
  std::optional<LoraAdapter> copy;
  const LoraAdapter& whole = host_view(full, copy);
  // Each tensor's split (lora_tp_split) divides one dimension of its projection by `size`.
  LoraLayout layout = whole.layout();
  for (const LoraTensor& tensor : whole.tensors()) {
    if (tensor.split == TpSplit::Replicated) continue;
    const int64_t dim = tensor.split == TpSplit::Rows ? tensor.rows : tensor.cols;
    check(dim % size == 0, kOrigin,
          tensor.name() + ": " + std::to_string(dim) +
              (tensor.split == TpSplit::Rows ? " rows" : " columns") + " do not divide by " +
              std::to_string(size));
    LoraShape& shape =
        *layout[static_cast<size_t>(tensor.layer)][static_cast<size_t>(tensor.target)];
    (tensor.split == TpSplit::Rows ? shape.out : shape.in) = dim / size;
  }
  LoraAdapter local(whole.config, layout);
  for (size_t i = 0; i < whole.tensors().size(); ++i) {
    const LoraTensor& from = whole.tensors()[i];
    const LoraTensor& to = local.tensors()[i];
    const int64_t row0 = from.split == TpSplit::Rows ? rank * to.rows : 0;
    const int64_t col0 = from.split == TpSplit::Columns ? rank * to.cols : 0;
    const std::span<const float> source = whole.parameter(from);
    const std::span<float> target = local.parameter(to);
    for (int64_t row = 0; row < to.rows; ++row) {
      const auto begin = source.begin() + (row0 + row) * from.cols + col0;
      std::copy(begin, begin + to.cols, target.begin() + row * to.cols);
    }
  }
  if (&full.backend() == &local.backend()) return local;
  return local.on_backend(full.backend());
}

}  // namespace ll
