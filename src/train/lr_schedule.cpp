// See lr_schedule.h.
#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "core/error.h"

namespace ll {

LrSchedule parse_lr_schedule(std::string_view name) {
  for (size_t i = 0; i < kLrScheduleNames.size(); ++i) {
    if (kLrScheduleNames[i] == name) return static_cast<LrSchedule>(i);
  }
  std::string known;
  for (const std::string_view known_name : kLrScheduleNames) {
    known += (known.empty() ? "" : ", ") + std::string(known_name);
  }
  fail("train", "--lr_scheduler_type: " + std::string(name) +
                    " is not supported (supported: " + known + ")");
}

std::string_view lr_schedule_name(LrSchedule schedule) {
  return kLrScheduleNames.at(static_cast<size_t>(schedule));
}

bool lr_schedule_warms_up(LrSchedule schedule) {
  return schedule != LrSchedule::Constant;
}

namespace {

// transformers' lr_lambda of each schedule (optimization.py), in its operation order.
double schedule_factor(LrSchedule schedule, int64_t step, int64_t warmup_steps,
                       int64_t total_steps) {
  if (lr_schedule_warms_up(schedule) && step < warmup_steps) {
    return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  }
  const double decay_steps = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  switch (schedule) {
    case LrSchedule::Linear:
      return std::max(0.0, static_cast<double>(total_steps - step) / decay_steps);
    case LrSchedule::Cosine: {
      // transformers: cos(pi * num_cycles * 2.0 * progress) with num_cycles 0.5; pi * 0.5 * 2.0
      // is exactly pi, so this is the same double.
      const double progress = static_cast<double>(step - warmup_steps) / decay_steps;
      return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
    }
    case LrSchedule::Constant:
    case LrSchedule::ConstantWithWarmup:
      return 1.0;
  }
  return 1.0;
}

}  // namespace

double scheduled_lr(LrSchedule schedule, double learning_rate, int64_t step, int64_t warmup_steps,
                    int64_t total_steps) {
  return learning_rate * schedule_factor(schedule, step, warmup_steps, total_steps);
}

int64_t warmup_steps_for(int64_t warmup_steps, double warmup_ratio, int64_t total_steps) {
  if (warmup_steps > 0) return warmup_steps;
  return static_cast<int64_t>(std::ceil(warmup_ratio * static_cast<double>(total_steps)));
}

}  // namespace ll
