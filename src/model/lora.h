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
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/backend.h"
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

// Which modules peft adapts and how: LoraConfig's r, lora_alpha, lora_dropout, use_rslora,
// target_modules and the per-module settings below, matched on peft's module names by peft's
// rules (model/peft_match.h).
struct LoraConfig {
  int64_t r = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  bool use_rslora = false;
  std::array<bool, kLoraTargetCount> targets{};  // which projections carry an adapter
  // rank_pattern / alpha_pattern: key -> r / lora_alpha, in the file's order (the first key
  // that matches a module wins).
  std::vector<std::pair<std::string, int64_t>> rank_pattern;
  std::vector<std::pair<std::string, double>> alpha_pattern;
  std::vector<int64_t> layers_to_transform;  // empty: every layer
  std::vector<std::string> layers_pattern;   // empty: peft's default layer regex
  // exclude_modules: a regex (re.fullmatch) or a list of names (equal or "." suffix).
  std::optional<std::string> exclude_regex;
  std::vector<std::string> exclude_names;

  double scale() const;  // alpha / r, or alpha / sqrt(r) with use_rslora (no pattern)
  bool targets_any() const;
  // Whether the projection `target` of `layer` carries an adapter (target_modules,
  // layers_to_transform, exclude_modules).
  bool adapts(int64_t layer, LoraTarget target) const;
  // That module's r and lora_alpha (rank_pattern, alpha_pattern), and its scale: alpha / r, or
  // alpha / sqrt(r) with use_rslora (peft's LoraLayer.update_layer, per module).
  int64_t rank_of(int64_t layer, LoraTarget target) const;
  double alpha_of(int64_t layer, LoraTarget target) const;
  double scale_of(int64_t layer, LoraTarget target) const;
  bool has_module_settings() const;  // any of the per-module fields set

  bool operator==(const LoraConfig&) const = default;
};

// Parses "q_proj,k_proj,..." or "all-linear"; an unknown name is an error naming it.
std::array<bool, kLoraTargetCount> parse_lora_targets(std::string_view list);

// Which of a projection's two LoRA matrices: A [r, in] (lora_A) or B [out, r] (lora_B).
enum class LoraPart { A, B };
inline constexpr std::array<LoraPart, 2> kLoraParts = {LoraPart::A, LoraPart::B};
inline const char* lora_part_letter(LoraPart part) {  // "A" or "B", as peft's names spell it
  return part == LoraPart::A ? "A" : "B";
}

// How one LoRA tensor is laid out over tensor-parallel ranks. The split rule (DESIGN.md
// "Tensor parallelism") lives in lora_tp_split alone: column-parallel q/k/v/gate/up split B
// [out, r] by rows and hold A whole; row-parallel o/down split A [r, in] by columns and hold
// B whole.
enum class TpSplit : int8_t { Replicated = -1, Rows = 0, Columns = 1 };
TpSplit lora_tp_split(LoraTarget target, LoraPart part);

// peft's tensor name of A or B of one layer's projection.
std::string lora_tensor_name(int64_t layer, LoraTarget target, LoraPart part);

// The (in, out) sizes of one adapted projection (as held: a tensor-parallel rank's share) and
// its rank r (never split over tensor-parallel ranks).
struct LoraShape {
  int64_t in = 0;
  int64_t out = 0;
  int64_t r = 0;
};
// Which projections of which layers carry an adapter: layout[layer][target].
using LoraLayout = std::vector<std::array<std::optional<LoraShape>, kLoraTargetCount>>;

// One tensor of the parameter store: what it is and where it lives in the store's blocks.
struct LoraTensor {
  int64_t layer = 0;
  LoraTarget target = LoraTarget::Q;
  LoraPart part = LoraPart::A;
  int64_t rows = 0;  // A [r, in], B [out, r]
  int64_t cols = 0;
  TpSplit split = TpSplit::Replicated;
  int64_t offset = 0;  // into parameters(), gradients() and the optimizer's moments

  int64_t count() const { return rows * cols; }
  std::string name() const { return lora_tensor_name(layer, target, part); }
};

// One adapted projection: views of its weights and gradients in the adapter's blocks.
// The views are fixed (const); their elements are the adapter's memory.
struct LoraMatrix {
  int64_t in = 0;
  int64_t out = 0;
  int64_t r = 0;                  // this module's rank (rank_pattern, else LoraConfig::r)
  double scale = 0.0;             // this module's LoraConfig::scale_of
  const std::span<float> a;       // [r, in] fp32
  const std::span<float> b;       // [out, r] fp32
  const std::span<float> grad_a;  // [r, in] fp32
  const std::span<float> grad_b;  // [out, r] fp32
};

// A LoRA adapter as a parameter store: one contiguous fp32 block for the parameters and one
// for their gradients, allocated through a Backend (device memory on a device backend), and
// a table of named views into them. The optimizer, gradient reduction, clipping, checkpoint
// and adapter I/O, tensor-parallel slicing and the model all go through it.
//
// tensors() lists every tensor by layer, then target in kAllLoraTargets order, A then B: the
// order of peft's files and of clip_grad_norm_'s sum. In memory, the replicated tensors (see
// TpSplit) come first, so that the tensor-parallel reduction of their partial gradients is
// one all-reduce on the head of the gradient block and the data-parallel one an all-reduce on
// the whole block.
//
// Host code (I/O, merge, tests) reads the views directly only when the backend's memory is
// the host's (host_view below gives a host copy otherwise).
class LoraAdapter {
 public:
  LoraConfig config;

  LoraAdapter() = default;
  // Zero parameters and gradients of `layout`'s projections on `backend` (null: the CPU).
  LoraAdapter(const LoraConfig& config, const LoraLayout& layout, Backend* backend = nullptr);
  LoraAdapter(const LoraAdapter& other);  // a deep copy on the same backend
  LoraAdapter& operator=(const LoraAdapter& other);
  LoraAdapter(LoraAdapter&& other) noexcept { *this = std::move(other); }
  LoraAdapter& operator=(LoraAdapter&& other) noexcept;  // leaves `other` empty

  // The same adapter (parameters and gradients) in `backend`'s memory.
  LoraAdapter on_backend(Backend& backend) const;

  // layers()[layer][target]: present when that projection is a target.
  const std::vector<std::array<std::optional<LoraMatrix>, kLoraTargetCount>>& layers() const {
    return layers_;
  }
  LoraLayout layout() const;
  const std::vector<LoraTensor>& tensors() const { return tensors_; }
  // The whole blocks, in backend memory, and the view of one tensor of the table.
  std::span<float> parameters() { return {parameters_.data(), size()}; }
  std::span<float> gradients() { return {gradients_.data(), size()}; }
  std::span<const float> parameters() const { return {parameters_.data(), size()}; }
  std::span<const float> gradients() const { return {gradients_.data(), size()}; }
  std::span<float> parameter(const LoraTensor& tensor);
  std::span<float> gradient(const LoraTensor& tensor);
  std::span<const float> parameter(const LoraTensor& tensor) const;
  std::span<const float> gradient(const LoraTensor& tensor) const;
  // Elements of the replicated tensors: the head of both blocks.
  int64_t replicated_count() const { return replicated_; }
  Backend& backend() const;

  void zero_grad();
  int64_t parameter_count() const { return size(); }  // of this share

 private:
  size_t size() const { return static_cast<size_t>(tensors_total_); }
  void build_views(const LoraLayout& layout);

  Backend* backend_ = nullptr;
  Buffer parameters_;
  Buffer gradients_;
  std::vector<LoraTensor> tensors_;
  std::vector<std::array<std::optional<LoraMatrix>, kLoraTargetCount>> layers_;
  int64_t replicated_ = 0;
  int64_t tensors_total_ = 0;
};

// `adapter` itself when its memory is the host's, else a host copy held in `copy`.
const LoraAdapter& host_view(const LoraAdapter& adapter, std::optional<LoraAdapter>& copy);

// Calls visit(layer, target, matrix) for every adapted projection of `adapter`, by layer,
// then in kAllLoraTargets order.
template <typename Visit>
void for_each_lora_matrix(const LoraAdapter& adapter, Visit&& visit) {
  const auto& layers = adapter.layers();
  for (size_t layer = 0; layer < layers.size(); ++layer) {
    for (LoraTarget target : kAllLoraTargets) {
      const auto& matrix = layers[layer][static_cast<size_t>(target)];
      if (matrix) visit(static_cast<int64_t>(layer), target, *matrix);
    }
  }
}

// The (in, out) sizes of a projection for this model shape.
std::pair<int64_t, int64_t> lora_target_shape(const LlamaConfig& model, LoraTarget target);

// A fresh adapter on the modules config.adapts() names, each of its rank_of(): A Kaiming-uniform
// (a = sqrt(5)) from `seed`, B zero. Errors (naming the setting) for r < 1 (also in
// rank_pattern), no targets, alpha <= 0 (also in alpha_pattern), dropout outside [0, 1), a
// layers_to_transform index outside the model, or patterns that leave no module adapted.
LoraAdapter lora_init(const LlamaConfig& model, const LoraConfig& config, uint64_t seed);

}  // namespace ll
