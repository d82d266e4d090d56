// See step_plan.h.
#include "train/step_plan.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "train/batches.h"

namespace ll {
namespace {
constexpr const char* kOrigin = "train";
}  // namespace

StepPlan::StepPlan(const StepPlanSettings& settings) : settings_(settings) {
  check(settings_.batch_rows >= 1 && settings_.accumulation >= 1, kOrigin,
        "batch sizes and gradient_accumulation_steps must be at least 1");
  check(settings_.dp_size >= 1 && settings_.dp_rank >= 0 && settings_.dp_rank < settings_.dp_size,
        kOrigin,
        "data-parallel rank " + std::to_string(settings_.dp_rank) + " of " +
            std::to_string(settings_.dp_size) + " is not a valid rank");
  check(settings_.sequences > 0, kOrigin, "no usable rows: the train split has no packed sequence");
  rows_per_step_ = settings_.batch_rows * settings_.accumulation * settings_.dp_size;
  const auto sequences = static_cast<int64_t>(settings_.sequences);
  steps_per_epoch_ = settings_.drop_last ? sequences / rows_per_step_
                                         : (sequences + rows_per_step_ - 1) / rows_per_step_;
  check(steps_per_epoch_ > 0, kOrigin,
        "the train split has " + std::to_string(sequences) +
            " sequences, fewer than one step takes (batch x accumulation = " +
            std::to_string(rows_per_step_) +
            ", times the data-parallel ranks) with --dataloader_drop_last");
  total_steps_ = settings_.max_steps > 0
                     ? settings_.max_steps
                     : static_cast<int64_t>(
                           std::ceil(settings_.epochs * static_cast<double>(steps_per_epoch_)));
  check(total_steps_ > 0, kOrigin, "nothing to train: set --max_steps or --num_train_epochs > 0");
}

std::vector<PlannedMicroBatch> StepPlan::micro_batches(int64_t step) {
  check(step >= 0, kOrigin, "step " + std::to_string(step) + " is negative");
  const int64_t epoch = step / steps_per_epoch_;
  if (order_epoch_ != epoch) {
    order_ = epoch_order(settings_.sequences, settings_.shuffle_seed, epoch);
    order_epoch_ = epoch;
  }
  const auto begin = static_cast<uint64_t>((step % steps_per_epoch_) * rows_per_step_);
  const uint64_t end =
      std::min<uint64_t>(settings_.sequences, begin + static_cast<uint64_t>(rows_per_step_));
  const auto batch = static_cast<uint64_t>(settings_.batch_rows);
  const auto ranks = static_cast<uint64_t>(settings_.dp_size);
  const auto rank = static_cast<uint64_t>(settings_.dp_rank);
  std::vector<PlannedMicroBatch> out;
  for (uint64_t m = 0; begin + m * ranks * batch < end; ++m) {
    const uint64_t first = begin + (m * ranks + rank) * batch;
    if (first >= end) break;
    PlannedMicroBatch& micro = out.emplace_back();
    const uint64_t last = std::min<uint64_t>(end, first + batch);
    micro.rows.assign(order_.begin() + static_cast<std::ptrdiff_t>(first),
                      order_.begin() + static_cast<std::ptrdiff_t>(last));
    micro.index = static_cast<int64_t>(m * ranks + rank);
  }
  return out;
}

}  // namespace ll
