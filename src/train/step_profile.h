// The `--profile` report: a ProfilingBackend's op times over the profiled steps, as seconds per
// step by op and projection, by phase (forward, recompute, backward, lm_head, optimizer), plus
// communication and the host time outside every backend op ("other": batching, the
// trainer's bookkeeping, waiting).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/profiling_backend.h"

namespace ll {

struct ProfiledSteps {
  int64_t steps = 0;
  double seconds = 0;       // their wall time, summed
  double comm_seconds = 0;  // of which in collectives
};

// The metrics' "profile" object: {"steps", "step_s", "ops": [{"phase", "module", "op",
// "s_per_step", "share", "calls_per_step"}, ...] largest first, "phases": {name: s_per_step},
// "communication_s", "other_s"}.
nlohmann::json step_profile_json(const OpProfile& profile, const ProfiledSteps& steps);

// The same as lines of text for the log: the phases, then the ops above 0.5% of the step.
std::vector<std::string> step_profile_table(const nlohmann::json& profile);

}  // namespace ll
