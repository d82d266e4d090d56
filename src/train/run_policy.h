// When a training run logs, evaluates and saves (trainer.h "logging", "saving", "stop"), from
// transformers' strategies (IntervalStrategy / SaveStrategy, DefaultFlowCallback):
//   steps  every N steps (N the --*_steps value; 0: never in between)
//   epoch  at the end of every epoch (a multiple of the steps per epoch)
//   no     never
// Logging with epoch also logs the last step (transformers' on_epoch_end runs when max_steps
// stops an epoch early). Evaluation and saving also happen at the end of a finished run unless
// the last step just did it or the strategy is no; a stop request saves a checkpoint when the
// run took a step since its last one (not with save strategy no). Evaluation before the first
// step (the base model's loss) belongs to a fresh run, not a resumed one, and not to no.
#pragma once

#include <cstdint>
#include <string_view>

namespace ll {

enum class IntervalStrategy { No, Steps, Epoch };

// "no", "steps", "epoch" (the flags' values are checked before: anything else is Steps).
inline IntervalStrategy parse_interval_strategy(std::string_view name) {
  if (name == "no") return IntervalStrategy::No;
  if (name == "epoch") return IntervalStrategy::Epoch;
  return IntervalStrategy::Steps;
}

struct Interval {
  IntervalStrategy strategy = IntervalStrategy::Steps;
  int64_t steps = 0;  // with Steps: every this many steps (0: never)
};

class RunPolicy {
 public:
  // A resumed run counts its first step as already saved (the checkpoint it came from).
  RunPolicy(Interval log, Interval eval, Interval save, int64_t steps_per_epoch, int64_t first_step,
            bool resumed)
      : log_(log),
        eval_(eval),
        save_(save),
        steps_per_epoch_(steps_per_epoch),
        first_step_(first_step),
        last_eval_(first_step),
        last_save_(resumed ? first_step : -1),
        resumed_(resumed) {}

  bool eval_before_training() const { return !resumed_ && eval_.strategy != IntervalStrategy::No; }
  // After optimizer step `step` (1-based, as logged) of `total_steps`; the caller then runs
  // what they say.
  bool log_after(int64_t step, int64_t total_steps) const {
    return due(log_, step) || (log_.strategy == IntervalStrategy::Epoch && step == total_steps);
  }
  bool eval_after(int64_t step) {
    if (!due(eval_, step)) return false;
    last_eval_ = step;
    return true;
  }
  bool save_after(int64_t step) {
    if (!due(save_, step)) return false;
    last_save_ = step;
    return true;
  }
  // At the end of a finished run, at `step`.
  bool eval_at_end(int64_t step) const {
    return eval_.strategy != IntervalStrategy::No && last_eval_ != step;
  }
  bool save_at_end(int64_t step) const {
    return save_.strategy != IntervalStrategy::No && last_save_ != step;
  }
  // When a stop request ended the run at `step`.
  bool save_at_stop(int64_t step) const {
    return save_.strategy != IntervalStrategy::No && step > first_step_ && last_save_ != step;
  }

 private:
  bool due(const Interval& interval, int64_t step) const {
    switch (interval.strategy) {
      case IntervalStrategy::No:
        return false;
      case IntervalStrategy::Steps:
        return interval.steps > 0 && step % interval.steps == 0;
      case IntervalStrategy::Epoch:
        return steps_per_epoch_ > 0 && step % steps_per_epoch_ == 0;
    }
    return false;
  }

  Interval log_;
  Interval eval_;
  Interval save_;
  int64_t steps_per_epoch_;
  int64_t first_step_;
  int64_t last_eval_;
  int64_t last_save_;
  bool resumed_;
};

}  // namespace ll
