// LoRA adapters with peft's semantics (peft/tuners/lora/layer.py):
//   y = x·Wᵀ + scale · (dropout(x)·Aᵀ)·Bᵀ,  A [r, in], B [out, r], fp32 master weights,
//   scale = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora (rank-stabilised LoRA:
//   keeps the update's magnitude independent of r).
// A starts Kaiming-uniform with a = sqrt(5) (bound 1/sqrt(in)), B at zero, so training starts
// from the base model exactly. Tensor names are peft's, e.g.
//   base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/llama_config.h"

namespace ll {

// The seven projections of a Llama block that LoRA may adapt, in peft's module names.
enum class LoraTarget : uint8_t { Q, K, V, O, Gate, Up, Down };
inline constexpr size_t kLoraTargetCount = 7;
inline constexpr std::array<LoraTarget, kLoraTargetCount> kAllLoraTargets = {
    LoraTarget::Q,    LoraTarget::K,  LoraTarget::V,   LoraTarget::O,
    LoraTarget::Gate, LoraTarget::Up, LoraTarget::Down};

std::string_view lora_target_name(LoraTarget target);                // "q_proj", ..., "down_proj"
std::string_view lora_target_block(LoraTarget target);               // "self_attn" or "mlp"
std::optional<LoraTarget> parse_lora_target(std::string_view name);  // also "model.q_proj"-free

struct LoraConfig {
  int64_t r = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  bool use_rslora = false;
  std::array<bool, kLoraTargetCount> targets{};  // which projections carry an adapter

  double scale() const;  // alpha / r, or alpha / sqrt(r) with use_rslora
  bool targets_any() const;
};

// Parses "q_proj,k_proj,..." or "all-linear"; an unknown name is an error naming it.
std::array<bool, kLoraTargetCount> parse_lora_targets(std::string_view list);

// Which of a projection's two LoRA matrices: A [r, in] (lora_A) or B [out, r] (lora_B).
enum class LoraPart { A, B };
inline constexpr std::array<LoraPart, 2> kLoraParts = {LoraPart::A, LoraPart::B};
inline const char* lora_part_letter(LoraPart part) {  // "A" or "B", as peft's names spell it
  return part == LoraPart::A ? "A" : "B";
}

// One adapted projection: weights, gradients (same shapes) and its input/output sizes.
struct LoraMatrix {
  int64_t in = 0;
  int64_t out = 0;
  std::vector<float> a;       // [r, in] fp32
  std::vector<float> b;       // [out, r] fp32
  std::vector<float> grad_a;  // [r, in] fp32
  std::vector<float> grad_b;  // [out, r] fp32
};

struct LoraAdapter {
  LoraConfig config;
  // layers[i][target]: present when that projection is a target.
  std::vector<std::array<std::optional<LoraMatrix>, kLoraTargetCount>> layers;

  void zero_grad();
  int64_t parameter_count() const;
};

// Calls visit(layer, target, matrix) for every adapted projection of `adapter` (const or
// not), by layer, then in kAllLoraTargets order: the order of LoraOptimizer's tensors.
template <typename Adapter, typename Visit>
void for_each_lora_matrix(Adapter& adapter, Visit&& visit) {
  for (size_t layer = 0; layer < adapter.layers.size(); ++layer) {
    for (LoraTarget target : kAllLoraTargets) {
      auto& matrix = adapter.layers[layer][static_cast<size_t>(target)];
      if (matrix) visit(static_cast<int64_t>(layer), target, *matrix);
    }
  }
}

// The (in, out) sizes of a projection for this model shape.
std::pair<int64_t, int64_t> lora_target_shape(const LlamaConfig& model, LoraTarget target);

// A fresh adapter: A Kaiming-uniform (a = sqrt(5)) from `seed`, B zero. Errors (naming the
// setting) for r < 1, no targets, alpha <= 0 or dropout outside [0, 1).
LoraAdapter lora_init(const LlamaConfig& model, const LoraConfig& config, uint64_t seed);

// peft's tensor name of A or B of one layer's projection.
std::string lora_tensor_name(int64_t layer, LoraTarget target, LoraPart part);

}  // namespace ll
