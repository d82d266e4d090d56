// See optimizer.h.
#include "train/optimizer.h"

#include <cmath>

#include "model/adapter_shards.h"

namespace ll {

LoraOptimizer::LoraOptimizer(LoraAdapter& adapter, OptimizerSettings settings)
    : adapter_(adapter), settings_(settings) {
  for_each_lora_matrix(adapter_, [&](int64_t, LoraTarget target, LoraMatrix& matrix) {
    slots_.push_back(
        {&matrix.a, &matrix.grad_a, lora_tp_split(target, 'A') != TpSplit::Replicated});
    slots_.push_back(
        {&matrix.b, &matrix.grad_b, lora_tp_split(target, 'B') != TpSplit::Replicated});
  });
  for (const Slot& slot : slots_) {
    exp_avg_.emplace_back(slot.param->size(), 0.0f);
    exp_avg_sq_.emplace_back(slot.param->size(), 0.0f);
  }
}

double LoraOptimizer::clip_gradients(Communicator* tensor_parallel) {
  if (tensor_parallel != nullptr && tensor_parallel->size() > 1) {
    double sums[2] = {0, 0};  // split, replicated
    for (const Slot& slot : slots_) {
      sums[slot.split ? 0 : 1] +=
          cpu::grad_sum_of_squares(slot.grad->data(), static_cast<int64_t>(slot.grad->size()));
    }
    tensor_parallel->all_reduce(sums, 1, ReduceOp::Sum);
    const double total_norm = std::sqrt(sums[0] + sums[1]);
    if (settings_.max_grad_norm <= 0) return total_norm;
    const double coefficient = cpu::clip_coefficient(total_norm, settings_.max_grad_norm);
    if (coefficient < 1.0) {
      for (const Slot& slot : slots_) {
        cpu::grad_scale(slot.grad->data(), static_cast<int64_t>(slot.grad->size()),
                        static_cast<float>(coefficient));
      }
    }
    return total_norm;
  }
  std::vector<cpu::GradBuffer> grads;
  grads.reserve(slots_.size());
  for (const Slot& slot : slots_) {
    grads.push_back({slot.grad->data(), static_cast<int64_t>(slot.grad->size())});
  }
  if (settings_.max_grad_norm <= 0) {
    double sum = 0;
    for (const auto& g : grads) sum += cpu::grad_sum_of_squares(g.data, g.size);
    return std::sqrt(sum);
  }
  return cpu::clip_grad_norm(grads, settings_.max_grad_norm);
}

void LoraOptimizer::step(double lr) {
  ++steps_;
  const cpu::AdamWConfig config{lr, settings_.beta1, settings_.beta2, settings_.epsilon,
                                settings_.weight_decay};
  for (size_t i = 0; i < slots_.size(); ++i) {
    cpu::adamw_update(slots_[i].param->data(), slots_[i].grad->data(), exp_avg_[i].data(),
                      exp_avg_sq_[i].data(), static_cast<int64_t>(slots_[i].param->size()), config,
                      steps_);
  }
}

}  // namespace ll
