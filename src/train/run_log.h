// The figures of a training run's log (trainer.h "logging"): what the steps since the last
// metrics line took (tokens/s, MFU against the machine's peak, the share spent in
// collectives) and this run's totals (the progress line's rate and ETA, the summary).
// Arithmetic only: the Trainer writes the lines.
#pragma once

#include <cstdint>
#include <optional>

#include <nlohmann/json.hpp>

#include "train/metrics.h"

namespace ll {

// What one optimizer step took, as the log counts it.
struct StepCost {
  double seconds = 0;       // wall time of the step (no eval, no save)
  double tokens = 0;        // trained tokens of the whole step (every data-parallel rank)
  double flops = 0;         // model FLOPs of those tokens
  double comm_seconds = 0;  // of `seconds`, in collectives
};

class RunLog {
 public:
  // `peak` null: MFU is logged as null. `world_size` > 1 adds world_size and comm_share.
  RunLog(std::optional<PeakFlops> peak, int world_size);

  void add(const StepCost& cost);

  // The throughput fields of a metrics line for the steps since the last one (tokens_per_s,
  // mfu, and with a world of several ranks world_size and comm_share), then starts a new
  // interval.
  nlohmann::json take_interval();

  double tokens_per_s() const;  // this run's trained tokens per second of optimizer steps
  double eta_seconds(int64_t steps_left) const;
  int64_t tokens() const { return run_tokens_; }
  const std::optional<PeakFlops>& peak() const { return peak_; }

 private:
  std::optional<PeakFlops> peak_;
  int world_size_ = 1;
  StepCost interval_;  // since the last metrics line
  double run_seconds_ = 0;
  int64_t run_steps_ = 0;
  int64_t run_tokens_ = 0;
};

}  // namespace ll
