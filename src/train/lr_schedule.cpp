// See lr_schedule.h.
#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "core/error.h"

namespace ll {

LrSchedule parse_lr_schedule(std::string_view name) {
  if (name == "linear") return LrSchedule::Linear;
  if (name == "cosine") return LrSchedule::Cosine;
  if (name == "constant" || name == "constant_with_warmup") return LrSchedule::Constant;
  fail("train",
       "lr_scheduler_type '" + std::string(name) + "' is not supported (linear, cosine, constant)");
}

std::string_view lr_schedule_name(LrSchedule schedule) {
  switch (schedule) {
    case LrSchedule::Linear:
      return "linear";
    case LrSchedule::Cosine:
      return "cosine";
    case LrSchedule::Constant:
      return "constant";
  }
  return "?";
}

double scheduled_lr(LrSchedule schedule, double learning_rate, int64_t step, int64_t warmup_steps,
                    int64_t total_steps) {
  if (step < warmup_steps) {
    return learning_rate * static_cast<double>(step) /
           static_cast<double>(std::max<int64_t>(1, warmup_steps));
  }
  const double decay_steps = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  switch (schedule) {
    case LrSchedule::Linear:
      return learning_rate * std::max(0.0, static_cast<double>(total_steps - step) / decay_steps);
    case LrSchedule::Cosine: {
      const double progress = static_cast<double>(step - warmup_steps) / decay_steps;
      return learning_rate * std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
    }
    case LrSchedule::Constant:
      return learning_rate;
  }
  return learning_rate;
}

int64_t warmup_steps_for(int64_t warmup_steps, double warmup_ratio, int64_t total_steps) {
  if (warmup_steps > 0) return warmup_steps;
  return static_cast<int64_t>(std::ceil(warmup_ratio * static_cast<double>(total_steps)));
}

}  // namespace ll
