// See optimizer.h.
#include "train/optimizer.h"

#include <cmath>

namespace ll {

LoraOptimizer::LoraOptimizer(LoraAdapter& adapter, OptimizerSettings settings)
    : adapter_(adapter),
      settings_(settings),
      backend_(adapter.backend()),
      exp_avg_(backend_, adapter.parameter_count()),
      exp_avg_sq_(backend_, adapter.parameter_count()) {
  if (exp_avg_.size() == 0) return;
  backend_.zero(exp_avg_.data(), exp_avg_.size());
  backend_.zero(exp_avg_sq_.data(), exp_avg_sq_.size());
}

double LoraOptimizer::clip_gradients(Communicator* tensor_parallel) {
  // Tensor by tensor in file order, as clip_grad_norm_ sums the per-tensor norms.
  const auto squares = [&](const LoraTensor& tensor) {
    return backend_.sum_of_squares(adapter_.gradient(tensor).data(), tensor.count());
  };
  double total_norm = 0;
  if (tensor_parallel != nullptr && tensor_parallel->size() > 1) {
    double sums[2] = {0, 0};  // split, replicated
    for (const LoraTensor& tensor : adapter_.tensors()) {
      sums[tensor.split == TpSplit::Replicated ? 1 : 0] += squares(tensor);
    }
    tensor_parallel->all_reduce(sums, 1, ReduceOp::Sum);
    total_norm = std::sqrt(sums[0] + sums[1]);
  } else {
    double sum = 0;
    for (const LoraTensor& tensor : adapter_.tensors()) sum += squares(tensor);
    total_norm = std::sqrt(sum);
  }
  if (settings_.max_grad_norm <= 0) return total_norm;
  const double coefficient = clip_coefficient(total_norm, settings_.max_grad_norm);
  if (coefficient < 1.0 && adapter_.parameter_count() > 0) {
    backend_.scale(adapter_.gradients().data(), adapter_.parameter_count(),
                   static_cast<float>(coefficient));
  }
  return total_norm;
}

void LoraOptimizer::step(double lr) {
  ++steps_;
  const AdamWConfig config{lr, settings_.beta1, settings_.beta2, settings_.epsilon,
                           settings_.weight_decay};
  if (adapter_.parameter_count() == 0) return;
  backend_.adamw_update(adapter_.parameters().data(), adapter_.gradients().data(), exp_avg_.data(),
                        exp_avg_sq_.data(), adapter_.parameter_count(), config, steps_);
}

}  // namespace ll
