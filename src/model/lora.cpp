// See lora.h.
#include "model/lora.h"

#include <cmath>
#include <random>

#include "core/error.h"

namespace ll {

std::string_view lora_target_name(LoraTarget target) {
  switch (target) {
    case LoraTarget::Q:
      return "q_proj";
    case LoraTarget::K:
      return "k_proj";
    case LoraTarget::V:
      return "v_proj";
    case LoraTarget::O:
      return "o_proj";
    case LoraTarget::Gate:
      return "gate_proj";
    case LoraTarget::Up:
      return "up_proj";
    case LoraTarget::Down:
      return "down_proj";
  }
  return "?";
}

std::string_view lora_target_block(LoraTarget target) {
  switch (target) {
    case LoraTarget::Q:
    case LoraTarget::K:
    case LoraTarget::V:
    case LoraTarget::O:
      return "self_attn";
    default:
      return "mlp";
  }
}

std::optional<LoraTarget> parse_lora_target(std::string_view name) {
  for (LoraTarget target : kAllLoraTargets) {
    if (name == lora_target_name(target)) return target;
  }
  return std::nullopt;
}

double LoraConfig::scale() const {
  return use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

bool LoraConfig::targets_any() const {
  for (bool on : targets) {
    if (on) return true;
  }
  return false;
}

std::array<bool, kLoraTargetCount> parse_lora_targets(std::string_view list) {
  std::array<bool, kLoraTargetCount> targets{};
  if (list == "all-linear" || list == "all") {
    targets.fill(true);
    return targets;
  }
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view name = list.substr(start, end - start);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (!name.empty()) {
      const auto target = parse_lora_target(name);
      if (!target) {
        fail("lora", "unknown target module '" + std::string(name) +
                         "' (known: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
                         "down_proj, all-linear)");
      }
      targets[static_cast<size_t>(*target)] = true;
    }
    start = end + 1;
  }
  return targets;
}

void LoraAdapter::zero_grad() {
  for (auto& layer : layers) {
    for (auto& matrix : layer) {
      if (!matrix) continue;
      std::fill(matrix->grad_a.begin(), matrix->grad_a.end(), 0.0f);
      std::fill(matrix->grad_b.begin(), matrix->grad_b.end(), 0.0f);
    }
  }
}

int64_t LoraAdapter::parameter_count() const {
  int64_t count = 0;
  for (const auto& layer : layers) {
    for (const auto& matrix : layer) {
      if (matrix) count += static_cast<int64_t>(matrix->a.size() + matrix->b.size());
    }
  }
  return count;
}

std::pair<int64_t, int64_t> lora_target_shape(const LlamaConfig& model, LoraTarget target) {
  const int64_t q_out = model.num_attention_heads * model.head_dim;
  const int64_t kv_out = model.num_key_value_heads * model.head_dim;
  switch (target) {
    case LoraTarget::Q:
      return {model.hidden_size, q_out};
    case LoraTarget::K:
    case LoraTarget::V:
      return {model.hidden_size, kv_out};
    case LoraTarget::O:
      return {q_out, model.hidden_size};
    case LoraTarget::Gate:
    case LoraTarget::Up:
      return {model.hidden_size, model.intermediate_size};
    case LoraTarget::Down:
      return {model.intermediate_size, model.hidden_size};
  }
  return {0, 0};
}

LoraAdapter lora_init(const LlamaConfig& model, const LoraConfig& config, uint64_t seed) {
  if (config.r < 1) fail("lora", "lora_r must be at least 1, got " + std::to_string(config.r));
  if (!(config.alpha > 0)) fail("lora", "lora_alpha must be positive");
  if (!(config.dropout >= 0 && config.dropout < 1)) {
    fail("lora", "lora_dropout must be in [0, 1), got " + std::to_string(config.dropout));
  }
  if (!config.targets_any()) fail("lora", "no target modules: LoRA would train nothing");
  LoraAdapter adapter;
  adapter.config = config;
  adapter.layers.resize(static_cast<size_t>(model.num_hidden_layers));
  std::mt19937_64 rng(seed);
  for (auto& layer : adapter.layers) {
    for (LoraTarget target : kAllLoraTargets) {
      if (!config.targets[static_cast<size_t>(target)]) continue;
      const auto [in, out] = lora_target_shape(model, target);
      LoraMatrix matrix;
      matrix.in = in;
      matrix.out = out;
      matrix.a.resize(static_cast<size_t>(config.r * in));
      matrix.b.assign(static_cast<size_t>(out * config.r), 0.0f);
      matrix.grad_a.assign(matrix.a.size(), 0.0f);
      matrix.grad_b.assign(matrix.b.size(), 0.0f);
      // kaiming_uniform_(a=sqrt(5)) on [r, in]: gain sqrt(2 / (1 + 5)), bound
      // gain * sqrt(3 / fan_in) = 1 / sqrt(in).
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      std::uniform_real_distribution<double> uniform(-bound, bound);
      for (float& value : matrix.a) value = static_cast<float>(uniform(rng));
      layer[static_cast<size_t>(target)] = std::move(matrix);
    }
  }
  return adapter;
}

std::string lora_tensor_name(int64_t layer, LoraTarget target, LoraPart part) {
  return "base_model.model.model.layers." + std::to_string(layer) + "." +
         std::string(lora_target_block(target)) + "." + std::string(lora_target_name(target)) +
         ".lora_" + lora_part_letter(part) + ".weight";
}

}  // namespace ll
