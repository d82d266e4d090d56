// Learning-rate schedules with transformers' semantics (optimization.py get_scheduler): the
// rate of optimizer step `step` (0-based: the first update uses step 0) is
// learning_rate · factor(step), with a linear warm-up from 0 over `warmup_steps`, then
//   linear:   (total - step) / (total - warmup), floored at 0
//   cosine:   0.5 · (1 + cos(π · progress)), progress = (step - warmup) / (total - warmup)
//   constant: 1 (after the warm-up; transformers calls this constant_with_warmup, and plain
//             constant when warmup_steps is 0).
#pragma once

#include <cstdint>
#include <string_view>

namespace ll {

enum class LrSchedule { Linear, Cosine, Constant };

LrSchedule parse_lr_schedule(std::string_view name);  // ll::Error naming unknown ones
std::string_view lr_schedule_name(LrSchedule schedule);

double scheduled_lr(LrSchedule schedule, double learning_rate, int64_t step, int64_t warmup_steps,
                    int64_t total_steps);

// transformers' get_warmup_steps: warmup_steps if > 0, else ceil(warmup_ratio · total).
int64_t warmup_steps_for(int64_t warmup_steps, double warmup_ratio, int64_t total_steps);

}  // namespace ll
