// See optimizer.h.
#include "train/optimizer.h"

#include <cmath>

#include "model/adapter_shards.h"

namespace ll {

LoraOptimizer::LoraOptimizer(LoraAdapter& adapter, OptimizerSettings settings, Backend* backend)
    : adapter_(adapter), settings_(settings), backend_(backend ? *backend : cpu_backend()) {
  for_each_lora_matrix(adapter_, [&](int64_t, LoraTarget target, LoraMatrix& matrix) {
    slots_.push_back(
        {&matrix.a, &matrix.grad_a, lora_tp_split(target, LoraPart::A) != TpSplit::Replicated});
    slots_.push_back(
        {&matrix.b, &matrix.grad_b, lora_tp_split(target, LoraPart::B) != TpSplit::Replicated});
  });
  for (const Slot& slot : slots_) {
    exp_avg_.emplace_back(slot.param->size(), 0.0f);
    exp_avg_sq_.emplace_back(slot.param->size(), 0.0f);
  }
}

double LoraOptimizer::clip_gradients(Communicator* tensor_parallel) {
  const auto size_of = [](const std::vector<float>* v) { return static_cast<int64_t>(v->size()); };
  double total_norm = 0;
  if (tensor_parallel != nullptr && tensor_parallel->size() > 1) {
    double sums[2] = {0, 0};  // split, replicated
    for (const Slot& slot : slots_) {
      sums[slot.split ? 0 : 1] += backend_.sum_of_squares(slot.grad->data(), size_of(slot.grad));
    }
    tensor_parallel->all_reduce(sums, 1, ReduceOp::Sum);
    total_norm = std::sqrt(sums[0] + sums[1]);
  } else {
    double sum = 0;  // tensor by tensor in adapter order, as clip_grad_norm_ sums the norms
    for (const Slot& slot : slots_)
      sum += backend_.sum_of_squares(slot.grad->data(), size_of(slot.grad));
    total_norm = std::sqrt(sum);
  }
  if (settings_.max_grad_norm <= 0) return total_norm;
  const double coefficient = clip_coefficient(total_norm, settings_.max_grad_norm);
  if (coefficient < 1.0) {
    for (const Slot& slot : slots_) {
      backend_.scale(slot.grad->data(), size_of(slot.grad), static_cast<float>(coefficient));
    }
  }
  return total_norm;
}

void LoraOptimizer::step(double lr) {
  ++steps_;
  const AdamWConfig config{lr, settings_.beta1, settings_.beta2, settings_.epsilon,
                           settings_.weight_decay};
  for (size_t i = 0; i < slots_.size(); ++i) {
    backend_.adamw_update(slots_[i].param->data(), slots_[i].grad->data(), exp_avg_[i].data(),
                          exp_avg_sq_[i].data(), static_cast<int64_t>(slots_[i].param->size()),
                          config, steps_);
  }
}

}  // namespace ll
