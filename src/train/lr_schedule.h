// Learning-rate schedules with transformers' semantics (optimization.py get_scheduler): the
// rate of optimizer step `step` (0-based: the first update uses step 0) is
// learning_rate · factor(step), the factor computed first and multiplied once, as torch's
// LambdaLR does (base_lr * lr_lambda(step)), so both give the same double. With
// w = warmup_steps, T = total_steps:
//   linear:               step / max(1, w) while step < w, then max(0, (T - step) / max(1, T - w))
//   cosine:               step / max(1, w) while step < w, then
//                         max(0, 0.5 · (1 + cos(π · progress))), progress = (step - w) / max(1, T -
//                         w)
//   constant:             1 at every step: transformers' get_constant_schedule has no warm-up
//                         (get_scheduler ignores num_warmup_steps for it)
//   constant_with_warmup: step / max(1, w) while step < w, then 1
// tests/train/test_lr_schedule.cpp compares every step with transformers' own schedulers.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace ll {

enum class LrSchedule { Linear, Cosine, Constant, ConstantWithWarmup };

// The --lr_scheduler_type names we accept, in the order of LrSchedule.
inline constexpr std::array<std::string_view, 4> kLrScheduleNames = {"linear", "cosine", "constant",
                                                                     "constant_with_warmup"};
LrSchedule parse_lr_schedule(std::string_view name);  // ll::Error naming unknown ones
std::string_view lr_schedule_name(LrSchedule schedule);
// Whether the schedule has a warm-up phase (false: warmup_steps would be ignored).
bool lr_schedule_warms_up(LrSchedule schedule);

double scheduled_lr(LrSchedule schedule, double learning_rate, int64_t step, int64_t warmup_steps,
                    int64_t total_steps);

// transformers' get_warmup_steps: warmup_steps if > 0, else ceil(warmup_ratio · total).
int64_t warmup_steps_for(int64_t warmup_steps, double warmup_ratio, int64_t total_steps);

}  // namespace ll
