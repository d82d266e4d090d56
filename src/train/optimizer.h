// AdamW over the LoRA tensors of an adapter (fp32 master weights and moments), with global
// gradient-norm clipping, as HF Trainer runs torch.optim.AdamW: clip, then step.
#pragma once

#include <cstdint>
#include <vector>

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
  // The updates run on `backend` (null: the CPU backend), in the memory the adapter's tensors
  // live in (host vectors today: the CPU backend's memory).
  LoraOptimizer(LoraAdapter& adapter, OptimizerSettings settings, Backend* backend = nullptr);

  // Norm of all LoRA gradients (before clipping), clipping them when above max_grad_norm.
  // With a tensor-parallel group of size > 1 the adapter is this rank's share: the squares
  // of split tensors are summed over the group, replicated ones counted once, so every rank
  // gets the whole adapter's norm.
  double clip_gradients(Communicator* tensor_parallel = nullptr);
  // One AdamW update with learning rate `lr`; increments the step count first.
  void step(double lr);

  int64_t steps_taken() const { return steps_; }
  // Moments in adapter tensor order (A then B per adapted projection), for checkpoints.
  std::vector<std::vector<float>>& exp_avg() { return exp_avg_; }
  std::vector<std::vector<float>>& exp_avg_sq() { return exp_avg_sq_; }
  void set_steps_taken(int64_t steps) { steps_ = steps; }

 private:
  struct Slot {
    std::vector<float>* param;
    std::vector<float>* grad;
    bool split;  // split over tensor-parallel ranks (else replicated)
  };
  LoraAdapter& adapter_;
  OptimizerSettings settings_;
  Backend& backend_;
  std::vector<Slot> slots_;
  std::vector<std::vector<float>> exp_avg_;
  std::vector<std::vector<float>> exp_avg_sq_;
  int64_t steps_ = 0;
};

}  // namespace ll
