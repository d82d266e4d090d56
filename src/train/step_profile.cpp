// See step_profile.h.
#include "train/step_profile.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace ll {
namespace {

using nlohmann::json;

// A region path as the model pushes it ("backward/recompute/q_proj") split into the phase
// (its first part and "recompute" when present) and the module (the last part when it is a
// projection: what the model pushed around the op).
struct Place {
  std::string phase;
  std::string module;
};

Place place_of(const std::string& path) {
  std::vector<std::string> parts;
  for (size_t begin = 0; begin <= path.size();) {
    const size_t slash = std::min(path.find('/', begin), path.size());
    if (slash > begin) parts.emplace_back(path.substr(begin, slash - begin));
    begin = slash + 1;
  }
  Place place;
  for (const std::string& part : parts) {
    const bool projection = part.size() > 5 && part.compare(part.size() - 5, 5, "_proj") == 0;
    if (projection) {
      place.module = part;
    } else {
      place.phase = part;  // the innermost phase: "recompute" inside "backward"
    }
  }
  if (place.phase.empty()) place.phase = "outside";
  return place;
}

std::string format_seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%8.1f ms", s * 1e3);
  return text;
}

std::string format_share(double share) {
  char text[16];
  std::snprintf(text, sizeof text, "%5.1f%%", share * 100);
  return text;
}

}  // namespace

json step_profile_json(const OpProfile& profile, const ProfiledSteps& steps) {
  const double n = static_cast<double>(std::max<int64_t>(1, steps.steps));
  const double step_s = steps.seconds / n;
  struct Row {
    Place place;
    std::string op;
    double seconds = 0;
    int64_t calls = 0;
  };
  std::vector<Row> rows;
  std::map<std::string, double> phases;
  double in_ops = 0;
  for (const auto& [key, time] : profile) {
    Row row{place_of(key.first), key.second, time.seconds, time.calls};
    phases[row.place.phase] += time.seconds / n;
    in_ops += time.seconds;
    rows.push_back(std::move(row));
  }
  std::sort(rows.begin(), rows.end(),
            [](const Row& a, const Row& b) { return a.seconds > b.seconds; });
  json ops = json::array();
  for (const Row& row : rows) {
    ops.push_back({{"phase", row.place.phase},
                   {"module", row.place.module},
                   {"op", row.op},
                   {"s_per_step", row.seconds / n},
                   {"share", step_s > 0 ? row.seconds / n / step_s : 0.0},
                   {"calls_per_step", static_cast<double>(row.calls) / n}});
  }
  const double comm_s = steps.comm_seconds / n;
  return {{"steps", steps.steps},
          {"step_s", step_s},
          {"ops", ops},
          {"phases", phases},
          {"communication_s", comm_s},
          {"other_s", std::max(0.0, step_s - in_ops / n - comm_s)}};
}

std::vector<std::string> step_profile_table(const json& profile) {
  std::vector<std::string> lines;
  const double step_s = profile.at("step_s").get<double>();
  const auto share = [&](double s) { return format_share(step_s > 0 ? s / step_s : 0); };
  lines.push_back("[profile] " + std::to_string(profile.at("steps").get<int64_t>()) +
                  " steady-state steps, " + format_seconds(step_s) + " per step");
  for (const auto& [phase, s] : profile.at("phases").items()) {
    lines.push_back("[profile]   phase " + phase +
                    std::string(12 - std::min<size_t>(11, phase.size()), ' ') +
                    format_seconds(s.get<double>()) + "  " + share(s.get<double>()));
  }
  const double comm = profile.at("communication_s").get<double>();
  const double other = profile.at("other_s").get<double>();
  lines.push_back("[profile]   communication     " + format_seconds(comm) + "  " + share(comm));
  lines.push_back("[profile]   other (host)      " + format_seconds(other) + "  " + share(other));
  // Ops summed over phases, by module and op.
  std::map<std::pair<std::string, std::string>, double> by_op;
  for (const json& row : profile.at("ops")) {
    by_op[{row.at("module").get<std::string>(), row.at("op").get<std::string>()}] +=
        row.at("s_per_step").get<double>();
  }
  std::vector<std::pair<double, std::string>> sorted;
  for (const auto& [key, s] : by_op) {
    const std::string name = key.first.empty() ? key.second : key.first + " " + key.second;
    sorted.emplace_back(s, name);
  }
  std::sort(sorted.rbegin(), sorted.rend());
  for (const auto& [s, name] : sorted) {
    if (step_s > 0 && s / step_s < 0.005) break;
    lines.push_back("[profile]   " + name +
                    std::string(36 - std::min<size_t>(35, name.size()), ' ') + format_seconds(s) +
                    "  " + share(s));
  }
  return lines;
}

}  // namespace ll
