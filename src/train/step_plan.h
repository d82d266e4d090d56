// What each optimizer step of a run trains on (trainer.h "schedule", "data", "parallel"):
// the step counts, the epoch's order of the packed sequences and how a step's rows are cut
// into this data-parallel rank's micro-batches. Pure arithmetic on counts and seeds: no
// model, no I/O, so it is tested alone (tests/train/test_step_plan.cpp).
//
//   steps_per_epoch  ceil(sequences / rows_per_step), or floor with drop_last (then every
//                    step is full); rows_per_step = batch x accumulation x dp ranks
//   total_steps      max_steps if > 0, else ceil(num_train_epochs x steps_per_epoch)
//   step s           epoch s / steps_per_epoch; positions [(s % steps_per_epoch) x
//                    rows_per_step, +rows_per_step) of that epoch's order (epoch_order), the
//                    last step of an epoch short when the rows do not divide
//   micro-batch m    of dp rank d: the step's positions [(m·ranks + d)·batch, +batch); its
//                    index m·ranks + d names its dropout masks (micro_batch_dropout_seed)
#pragma once

#include <cstdint>
#include <vector>

namespace ll {

struct StepPlanSettings {
  uint64_t sequences = 0;    // packed training sequences
  int64_t batch_rows = 1;    // per_device_train_batch_size
  int64_t accumulation = 1;  // gradient_accumulation_steps
  int64_t dp_rank = 0;       // this rank of the data-parallel group
  int64_t dp_size = 1;       // data-parallel ranks
  bool drop_last = false;    // --dataloader_drop_last
  int64_t max_steps = 0;     // > 0 wins over epochs
  double epochs = 1;         // num_train_epochs
  uint64_t shuffle_seed = 0;
};

// One micro-batch of a step: the sequences it holds (indices into the training sequences,
// in row order) and its index within the step over all data-parallel ranks.
struct PlannedMicroBatch {
  std::vector<uint64_t> rows;
  int64_t index = 0;
};

class StepPlan {
 public:
  // Checks the settings (one-line errors naming the flag) and derives the step counts.
  explicit StepPlan(const StepPlanSettings& settings);

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t total_steps() const { return total_steps_; }
  int64_t rows_per_step() const { return rows_per_step_; }

  // This rank's micro-batches of step `step` (0-based); a rank may get fewer than the
  // accumulation count on a short last step of an epoch (or none).
  std::vector<PlannedMicroBatch> micro_batches(int64_t step);

 private:
  StepPlanSettings settings_;
  int64_t rows_per_step_ = 0;
  int64_t steps_per_epoch_ = 0;
  int64_t total_steps_ = 0;
  std::vector<uint64_t> order_;  // the order of epoch order_epoch_
  int64_t order_epoch_ = -1;
};

}  // namespace ll
