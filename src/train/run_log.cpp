// See run_log.h.
#include "train/run_log.h"

namespace ll {

RunLog::RunLog(std::optional<PeakFlops> peak, int world_size)
    : peak_(std::move(peak)), world_size_(world_size) {}

void RunLog::add(const StepCost& cost) {
  interval_.seconds += cost.seconds;
  interval_.tokens += cost.tokens;
  interval_.flops += cost.flops;
  interval_.comm_seconds += cost.comm_seconds;
  run_seconds_ += cost.seconds;
  ++run_steps_;
  run_tokens_ += static_cast<int64_t>(cost.tokens);
}

nlohmann::json RunLog::take_interval() {
  const double s = interval_.seconds;
  nlohmann::json fields = {{"tokens_per_s", s > 0 ? interval_.tokens / s : 0}, {"mfu", nullptr}};
  if (peak_ && s > 0) fields["mfu"] = interval_.flops / (s * peak_->flops_per_s);
  if (world_size_ > 1) {
    fields["world_size"] = world_size_;
    fields["comm_share"] = s > 0 ? interval_.comm_seconds / s : 0;
  }
  interval_ = StepCost{};
  return fields;
}

double RunLog::tokens_per_s() const {
  return run_seconds_ > 0 ? static_cast<double>(run_tokens_) / run_seconds_ : 0;
}

double RunLog::eta_seconds(int64_t steps_left) const {
  return run_steps_ > 0
             ? run_seconds_ / static_cast<double>(run_steps_) * static_cast<double>(steps_left)
             : 0;
}

}  // namespace ll
