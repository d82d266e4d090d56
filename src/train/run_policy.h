// When a training run evaluates and saves (trainer.h "logging", "saving", "stop"): every
// eval_steps / save_steps (0: never in between), at the end of a finished run unless the last
// step just did it, and on a stop request a checkpoint when the run took a step since its
// last one. Evaluation before the first step belongs to a fresh run, not a resumed one.
#pragma once

#include <cstdint>

namespace ll {

class RunPolicy {
 public:
  // A resumed run counts its first step as already saved (the checkpoint it came from).
  RunPolicy(int64_t eval_steps, int64_t save_steps, int64_t first_step, bool resumed)
      : eval_steps_(eval_steps),
        save_steps_(save_steps),
        first_step_(first_step),
        last_eval_(first_step),
        last_save_(resumed ? first_step : -1),
        resumed_(resumed) {}

  bool eval_before_training() const { return !resumed_; }
  // After optimizer step `step` (1-based, as logged); the caller then runs what it says.
  bool eval_after(int64_t step) {
    if (eval_steps_ <= 0 || step % eval_steps_ != 0) return false;
    last_eval_ = step;
    return true;
  }
  bool save_after(int64_t step) {
    if (save_steps_ <= 0 || step % save_steps_ != 0) return false;
    last_save_ = step;
    return true;
  }
  // At the end of a finished run, at `step`.
  bool eval_at_end(int64_t step) const { return last_eval_ != step; }
  bool save_at_end(int64_t step) const { return last_save_ != step; }
  // When a stop request ended the run at `step`.
  bool save_at_stop(int64_t step) const { return step > first_step_ && last_save_ != step; }

 private:
  int64_t eval_steps_;
  int64_t save_steps_;
  int64_t first_step_;
  int64_t last_eval_;
  int64_t last_save_;
  bool resumed_;
};

}  // namespace ll
