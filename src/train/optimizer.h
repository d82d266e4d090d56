// AdamW over the LoRA parameter store of an adapter (fp32 master weights and moments), with
// global gradient-norm clipping, as HF Trainer runs torch.optim.AdamW: clip, then step.
#pragma once

#include <cstdint>
#include <span>

#include "backend/backend.h"
#include "model/lora.h"
#include "parallel/communicator.h"

namespace ll {

struct OptimizerSettings {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;  // <= 0: no clipping
};

class LoraOptimizer {
 public:
  // The updates run on the adapter's backend, on its parameter and gradient blocks; the two
  // moments are blocks of the same layout (adapter.tensors()' offsets), allocated there too.
  LoraOptimizer(LoraAdapter& adapter, OptimizerSettings settings);

  // Norm of all LoRA gradients (before clipping), clipping them when above max_grad_norm.
  // With a tensor-parallel group of size > 1 the adapter is this rank's share: the squares
  // of split tensors are summed over the group, replicated ones counted once, so every rank
  // gets the whole adapter's norm.
  double clip_gradients(Communicator* tensor_parallel = nullptr);
  // One AdamW update with learning rate `lr`; increments the step count first.
  void step(double lr);

  int64_t steps_taken() const { return steps_; }
  void set_steps_taken(int64_t steps) { steps_ = steps; }
  // The moments in the adapter's backend memory, laid out as adapter.tensors() says.
  std::span<float> exp_avg() { return {exp_avg_.data(), static_cast<size_t>(exp_avg_.size())}; }
  std::span<float> exp_avg_sq() {
    return {exp_avg_sq_.data(), static_cast<size_t>(exp_avg_sq_.size())};
  }
  const LoraAdapter& adapter() const { return adapter_; }

 private:
  LoraAdapter& adapter_;
  OptimizerSettings settings_;
  Backend& backend_;
  Buffer exp_avg_;
  Buffer exp_avg_sq_;
  int64_t steps_ = 0;
};

}  // namespace ll
