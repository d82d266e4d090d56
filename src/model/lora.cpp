// See lora.h.
#include "model/lora.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

#include "core/error.h"
#include "model/peft_match.h"

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

namespace {

// The value of the first key of `pattern` that matches `module` (peft's get_pattern_key).
template <typename Value>
std::optional<Value> pattern_value(const std::vector<std::pair<std::string, Value>>& pattern,
                                   const std::string& module) {
  for (const auto& [key, value] : pattern) {
    if (peft_pattern_key_matches(key, module)) return value;
  }
  return std::nullopt;
}

}  // namespace

bool LoraConfig::adapts(int64_t layer, LoraTarget target) const {
  if (!targets[static_cast<size_t>(target)]) return false;
  const std::string module = peft_module_name(layer, target);
  if (exclude_regex && python_regex_fullmatch(*exclude_regex, module, "exclude_modules")) {
    return false;
  }
  for (const std::string& name : exclude_names) {
    if (module == name || module.ends_with("." + name)) return false;
  }
  if (layers_to_transform.empty()) return true;
  const std::optional<int64_t> index = peft_layer_index(module, layers_pattern);
  return index && std::find(layers_to_transform.begin(), layers_to_transform.end(), *index) !=
                      layers_to_transform.end();
}

int64_t LoraConfig::rank_of(int64_t layer, LoraTarget target) const {
  if (rank_pattern.empty()) return r;
  return pattern_value(rank_pattern, peft_module_name(layer, target)).value_or(r);
}

double LoraConfig::alpha_of(int64_t layer, LoraTarget target) const {
  if (alpha_pattern.empty()) return alpha;
  return pattern_value(alpha_pattern, peft_module_name(layer, target)).value_or(alpha);
}

double LoraConfig::scale_of(int64_t layer, LoraTarget target) const {
  const auto rank = static_cast<double>(rank_of(layer, target));
  const double module_alpha = alpha_of(layer, target);
  return use_rslora ? module_alpha / std::sqrt(rank) : module_alpha / rank;
}

bool LoraConfig::has_module_settings() const {
  return !rank_pattern.empty() || !alpha_pattern.empty() || !layers_to_transform.empty() ||
         !layers_pattern.empty() || exclude_regex || !exclude_names.empty();
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

TpSplit lora_tp_split(LoraTarget target, LoraPart part) {
  const bool row_parallel = target == LoraTarget::O || target == LoraTarget::Down;
  if (row_parallel) return part == LoraPart::A ? TpSplit::Columns : TpSplit::Replicated;
  return part == LoraPart::A ? TpSplit::Replicated : TpSplit::Rows;
}

LoraAdapter::LoraAdapter(const LoraConfig& lora, const LoraLayout& layout, Backend* backend)
    : config(lora), backend_(backend ? backend : &cpu_backend()) {
  build_views(layout);
  if (tensors_total_ == 0) return;
  backend_->zero(parameters_.data(), tensors_total_);
  backend_->zero(gradients_.data(), tensors_total_);
}

LoraAdapter::LoraAdapter(const LoraAdapter& other)
    : config(other.config), backend_(other.backend_) {
  if (backend_ == nullptr) return;  // a default-constructed adapter
  build_views(other.layout());
  if (tensors_total_ == 0) return;
  backend_->copy(parameters_.data(), other.parameters_.data(), tensors_total_);
  backend_->copy(gradients_.data(), other.gradients_.data(), tensors_total_);
}

LoraAdapter& LoraAdapter::operator=(const LoraAdapter& other) {
  if (this != &other) *this = LoraAdapter(other);
  return *this;
}

LoraAdapter& LoraAdapter::operator=(LoraAdapter&& other) noexcept {
  if (this == &other) return *this;
  config = other.config;
  backend_ = other.backend_;
  parameters_ = std::move(other.parameters_);  // the views keep pointing at the same memory
  gradients_ = std::move(other.gradients_);
  tensors_ = std::move(other.tensors_);
  layers_ = std::move(other.layers_);
  replicated_ = std::exchange(other.replicated_, 0);
  tensors_total_ = std::exchange(other.tensors_total_, 0);
  other.tensors_.clear();
  other.layers_.clear();
  return *this;
}

LoraAdapter LoraAdapter::on_backend(Backend& target) const {
  LoraAdapter out;
  out.config = config;
  out.backend_ = &target;
  out.build_views(layout());
  if (tensors_total_ == 0) return out;
  const auto move_block = [&](float* dst, const float* src) {
    const Backend& source = backend();
    if (source.memory_space() == MemorySpace::Host) {
      target.upload(dst, src, tensors_total_);
    } else if (target.memory_space() == MemorySpace::Host) {
      backend_->download(dst, src, tensors_total_);
    } else {  // device to device: through the host
      std::vector<float> staged(size());
      backend_->download(staged.data(), src, tensors_total_);
      target.upload(dst, staged.data(), tensors_total_);
    }
  };
  move_block(out.parameters_.data(), parameters_.data());
  move_block(out.gradients_.data(), gradients_.data());
  return out;
}

void LoraAdapter::build_views(const LoraLayout& layout) {
  tensors_.clear();
  replicated_ = 0;
  tensors_total_ = 0;
  // The table in file order; offsets with the replicated tensors first.
  for (size_t layer = 0; layer < layout.size(); ++layer) {
    for (LoraTarget target : kAllLoraTargets) {
      const auto& shape = layout[layer][static_cast<size_t>(target)];
      if (!shape) continue;
      for (LoraPart part : kLoraParts) {
        LoraTensor tensor;
        tensor.layer = static_cast<int64_t>(layer);
        tensor.target = target;
        tensor.part = part;
        tensor.rows = part == LoraPart::A ? shape->r : shape->out;
        tensor.cols = part == LoraPart::A ? shape->in : shape->r;
        tensor.split = lora_tp_split(target, part);
        if (tensor.split == TpSplit::Replicated) replicated_ += tensor.count();
        tensors_total_ += tensor.count();
        tensors_.push_back(tensor);
      }
    }
  }
  int64_t next_replicated = 0;
  int64_t next_split = replicated_;
  for (LoraTensor& tensor : tensors_) {
    int64_t& next = tensor.split == TpSplit::Replicated ? next_replicated : next_split;
    tensor.offset = next;
    next += tensor.count();
  }
  parameters_.resize(backend(), tensors_total_);
  gradients_.resize(backend(), tensors_total_);

  layers_.clear();
  layers_.resize(layout.size());
  size_t index = 0;
  for (size_t layer = 0; layer < layout.size(); ++layer) {
    for (LoraTarget target : kAllLoraTargets) {
      const auto& shape = layout[layer][static_cast<size_t>(target)];
      if (!shape) continue;
      const LoraTensor& a = tensors_[index++];
      const LoraTensor& b = tensors_[index++];
      const double scale = config.scale_of(static_cast<int64_t>(layer), target);
      layers_[layer][static_cast<size_t>(target)].emplace(
          LoraMatrix{shape->in, shape->out, shape->r, scale, parameter(a), parameter(b),
                     gradient(a), gradient(b)});
    }
  }
}

LoraLayout LoraAdapter::layout() const {
  LoraLayout out(layers_.size());
  for_each_lora_matrix(*this, [&](int64_t layer, LoraTarget target, const LoraMatrix& m) {
    out[static_cast<size_t>(layer)][static_cast<size_t>(target)] = LoraShape{m.in, m.out, m.r};
  });
  return out;
}

namespace {
template <typename Span>
Span tensor_of(Span block, const LoraTensor& tensor) {
  return block.subspan(static_cast<size_t>(tensor.offset), static_cast<size_t>(tensor.count()));
}
}  // namespace

std::span<float> LoraAdapter::parameter(const LoraTensor& tensor) {
  return tensor_of(parameters(), tensor);
}
std::span<float> LoraAdapter::gradient(const LoraTensor& tensor) {
  return tensor_of(gradients(), tensor);
}
std::span<const float> LoraAdapter::parameter(const LoraTensor& tensor) const {
  return tensor_of(parameters(), tensor);
}
std::span<const float> LoraAdapter::gradient(const LoraTensor& tensor) const {
  return tensor_of(gradients(), tensor);
}

Backend& LoraAdapter::backend() const {
  return backend_ ? *backend_ : cpu_backend();
}

void LoraAdapter::zero_grad() {
  if (tensors_total_ > 0) backend().zero(gradients_.data(), tensors_total_);
}

const LoraAdapter& host_view(const LoraAdapter& adapter, std::optional<LoraAdapter>& copy) {
  if (adapter.backend().memory_space() == MemorySpace::Host) return adapter;
  copy.emplace(adapter.on_backend(cpu_backend()));
  return *copy;
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
  for (const auto& [key, rank] : config.rank_pattern) {
    if (rank < 1) fail("lora", "rank_pattern '" + key + "': r must be at least 1");
  }
  for (const auto& [key, value] : config.alpha_pattern) {
    if (!(value > 0)) fail("lora", "alpha_pattern '" + key + "': lora_alpha must be positive");
  }
  for (int64_t layer : config.layers_to_transform) {
    if (layer < 0 || layer >= model.num_hidden_layers) {
      fail("lora", "layers_to_transform: layer " + std::to_string(layer) + " is not one of the " +
                       std::to_string(model.num_hidden_layers) + " layers of this model");
    }
  }
  LoraLayout layout(static_cast<size_t>(model.num_hidden_layers));
  bool any = false;
  for (size_t layer = 0; layer < layout.size(); ++layer) {
    for (LoraTarget target : kAllLoraTargets) {
      if (!config.adapts(static_cast<int64_t>(layer), target)) continue;
      const auto [in, out] = lora_target_shape(model, target);
      layout[layer][static_cast<size_t>(target)] =
          LoraShape{in, out, config.rank_of(static_cast<int64_t>(layer), target)};
      any = true;
    }
  }
  if (!any) fail("lora", "target_modules with layers_to_transform/exclude_modules match no module");
  LoraAdapter adapter(config, layout);
  // kaiming_uniform_(a=sqrt(5)) on each A [r, in], layer by layer in target order: gain
  // sqrt(2 / (1 + 5)), bound gain * sqrt(3 / fan_in) = 1 / sqrt(in). B stays zero.
  std::mt19937_64 rng(seed);
  for_each_lora_matrix(adapter, [&](int64_t, LoraTarget, const LoraMatrix& matrix) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(matrix.in));
    std::uniform_real_distribution<double> uniform(-bound, bound);
    for (float& value : matrix.a) value = static_cast<float>(uniform(rng));
  });
  return adapter;
}

std::string lora_tensor_name(int64_t layer, LoraTarget target, LoraPart part) {
  return "base_model.model.model.layers." + std::to_string(layer) + "." +
         std::string(lora_target_block(target)) + "." + std::string(lora_target_name(target)) +
         ".lora_" + lora_part_letter(part) + ".weight";
}

}  // namespace ll
