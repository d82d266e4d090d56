// See run_report.h. The page itself (HTML, CSS, the drawing script) is run_report_page.cpp.
#include "tools/run_report.h"

#include <algorithm>
#include <map>
#include <string_view>

#include "core/error.h"
#include "core/version.h"
#include "formats/input_checks.h"
#include "train/checkpoint.h"
#include "train/training_fields.h"

namespace ll {

extern const char* const kRunReportPage;  // run_report_page.cpp

namespace {

using json = nlohmann::json;
constexpr const char* kOrigin = "report";
constexpr std::string_view kDataPlaceholder = "@RUN_DATA@";
constexpr std::string_view kDataOpen = "<script type=\"application/json\" id=\"run-data\">";
// Settings that are not flags: what the trainer adds to training_args.json.
constexpr const char* kRunGroup = "Run (precision, version)";

bool is_summary_line(const json& line) {
  return line.contains("train_runtime_s");
}

struct MetricsFile {
  std::vector<json> lines;  // every complete line, the summary included
  int64_t line_count = 0;   // lines read (a cut last line not counted)
  int64_t cut_line = 0;     // the 1-based number of a cut last line, 0 if none
};

// metrics.jsonl: JSON objects, one a line, each with an integer "step". A last line without
// its newline that does not parse is what a killed writer leaves: dropped, and counted.
MetricsFile read_metrics(const fs::path& path) {
  const std::string text = read_file(path);
  MetricsFile out;
  size_t pos = 0;
  int64_t number = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    const bool has_newline = end != std::string::npos;
    const std::string_view line =
        std::string_view(text).substr(pos, (has_newline ? end : text.size()) - pos);
    pos = has_newline ? end + 1 : text.size();
    ++number;
    const std::string where = path.string() + ":" + std::to_string(number);
    json value = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded() && !has_newline) {
      out.cut_line = number;
      break;
    }
    if (value.is_discarded()) parse_json_text(line, kOrigin, where);  // throws, saying why
    check(value.is_object(), kOrigin,
          where + ": a metrics line must be a JSON object, not " + json_type_name(value));
    check(value.contains("step") && value["step"].is_number_integer(), kOrigin,
          where + ": no integer \"step\"");
    out.lines.push_back(std::move(value));
    out.line_count = number;
  }
  return out;
}

json read_json_object(const fs::path& path) {
  json value = parse_json_text(read_file(path), kOrigin, path.string());
  check(value.is_object(), kOrigin,
        path.string() + ": expected a JSON object, not " + json_type_name(value));
  return value;
}

// RUN_DIR/training_args.json, else the newest checkpoint's; null when neither exists.
json read_settings(const fs::path& run_dir) {
  std::error_code ec;
  if (fs::is_regular_file(run_dir / "training_args.json", ec)) {
    return read_json_object(run_dir / "training_args.json");
  }
  const auto checkpoints = list_checkpoints(run_dir);
  for (auto it = checkpoints.rbegin(); it != checkpoints.rend(); ++it) {
    if (fs::is_regular_file(it->second / "training_args.json", ec)) {
      return read_json_object(it->second / "training_args.json");
    }
  }
  return nullptr;
}

// The settings grouped as `train --help` groups them (train/training_fields.h), in its order;
// the keys that are no flag last.
json group_settings(const json& settings) {
  if (!settings.is_object()) return json::array();
  std::vector<std::string> order;
  std::map<std::string, json> groups;
  for (const Field& field : training_fields()) {
    const std::string group(field.group);
    if (!groups.contains(group)) {
      order.push_back(group);
      groups[group] = json::array();
    }
  }
  order.push_back(kRunGroup);
  groups[kRunGroup] = json::array();
  for (const Field& field : training_fields()) {
    const auto it = settings.find(std::string(field.name));
    if (it != settings.end())
      groups[std::string(field.group)].push_back({std::string(field.name), *it});
  }
  for (const auto& [name, value] : settings.items()) {
    if (find_field(name) == nullptr) groups[kRunGroup].push_back({name, value});
  }
  json out = json::array();
  for (const std::string& group : order) {
    if (!groups[group].empty()) out.push_back({{"group", group}, {"items", groups[group]}});
  }
  return out;
}

json overview_of(const std::vector<json>& lines, const json& summary, const json& settings) {
  json out = {{"steps", 0},
              {"duration_s", nullptr},
              {"tokens", nullptr},
              {"train_loss", nullptr},
              {"final_train_loss", nullptr},
              {"final_eval_loss", nullptr},
              {"best_eval_loss", nullptr},
              {"best_eval_step", nullptr},
              {"world_size", 1},
              {"tensor_parallel_size", 1}};
  for (const json& line : lines) {
    out["steps"] = std::max(out["steps"].get<int64_t>(), line["step"].get<int64_t>());
    if (line.contains("elapsed_s")) out["duration_s"] = line["elapsed_s"];
    if (line.contains("loss")) out["final_train_loss"] = line["loss"];
    if (line.contains("world_size")) out["world_size"] = line["world_size"];
    const auto eval = line.find("eval_loss");
    if (eval == line.end() || !eval->is_number()) continue;
    out["final_eval_loss"] = *eval;
    if (out["best_eval_loss"].is_null() || eval->get<double>() < out["best_eval_loss"]) {
      out["best_eval_loss"] = *eval;
      out["best_eval_step"] = line["step"];
    }
  }
  if (summary.is_object()) {
    out["steps"] = summary["step"];
    out["duration_s"] = summary.value("elapsed_s", summary["train_runtime_s"]);
    out["tokens"] = summary.value("train_tokens", json());
    out["train_loss"] = summary.value("train_loss", json());
  }
  if (settings.is_object()) {
    out["tensor_parallel_size"] = settings.value("tensor_parallel_size", json(1));
  }
  return out;
}

std::vector<fs::path> files_in(const fs::path& dir, std::string_view prefix) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file(ec) && name.starts_with(prefix) && name.ends_with(".json")) {
      out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

json read_eval(const fs::path& path) {
  json value = read_json_object(path);
  check(value.contains("eval_loss"), kOrigin,
        path.string() + ": no \"eval_loss\" (not the output of `llama-lora eval --json`)");
  value["file"] = path.filename().string();
  return value;
}

json read_compare(const fs::path& path) {
  json value = read_json_object(path);
  check(value.contains("examples") && value["examples"].is_array(), kOrigin,
        path.string() + ": no \"examples\" array (not the output of `llama-lora compare --json`)");
  value["file"] = path.filename().string();
  return value;
}

}  // namespace

json collect_run_report(const RunReportInputs& inputs) {
  const fs::path& dir = inputs.run_dir;
  std::error_code ec;
  check(fs::is_directory(dir, ec), kOrigin, dir.string() + ": not a folder");
  const fs::path metrics_path = dir / "metrics.jsonl";
  check(fs::is_regular_file(metrics_path, ec), kOrigin,
        metrics_path.string() + ": missing (not a training run's folder)");
  const MetricsFile metrics = read_metrics(metrics_path);

  json lines = json::array();
  json summary = nullptr;
  for (const json& line : metrics.lines) {
    if (is_summary_line(line)) {
      summary = line;
    } else {
      lines.push_back(line);
    }
  }
  const json settings = read_settings(dir);

  json checkpoints = json::array();
  for (const auto& [step, path] : list_checkpoints(dir)) {
    checkpoints.push_back({{"name", path.filename().string()}, {"step", step}});
  }
  json evals = json::array();
  for (const fs::path& file :
       inputs.eval_files.empty() ? files_in(dir, "eval") : inputs.eval_files) {
    evals.push_back(read_eval(file));
  }
  json compare = nullptr;
  if (inputs.compare_file) {
    compare = read_compare(*inputs.compare_file);
  } else if (const auto found = files_in(dir, "compare"); !found.empty()) {
    compare = read_compare(found.front());
  }

  return {{"format", "llama-lora run report 1"},
          {"written_by", std::string("llama-lora ") + kLlamaLoraVersion},
          {"run_dir", dir.string()},
          {"metrics",
           {{"file", "metrics.jsonl"},
            {"lines", metrics.line_count},
            {"cut_line", metrics.cut_line == 0 ? json() : json(metrics.cut_line)},
            {"finished", summary.is_object()}}},
          {"lines", lines},
          {"summary", summary},
          {"overview", overview_of(metrics.lines, summary, settings)},
          {"settings", group_settings(settings)},
          {"checkpoints", checkpoints},
          {"evals", evals},
          {"compare", compare}};
}

std::string render_run_report_html(const json& data) {
  // Invalid UTF-8 (a model's raw output) becomes U+FFFD instead of failing the report.
  std::string text = data.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string escaped;
  escaped.reserve(text.size());
  for (const char c : text) {
    if (c == '<') {
      escaped += "\\u003c";  // only inside JSON strings, where the escape means the same
    } else {
      escaped += c;
    }
  }
  std::string page = kRunReportPage;
  const size_t at = page.find(kDataPlaceholder);
  page.replace(at, kDataPlaceholder.size(), escaped);
  return page;
}

json read_run_report_data(const std::string& html, const std::string& path) {
  const size_t open = html.find(kDataOpen);
  check(open != std::string::npos, kOrigin, path + ": no run-data script (not a run report)");
  const size_t begin = open + kDataOpen.size();
  const size_t end = html.find("</script>", begin);
  check(end != std::string::npos, kOrigin, path + ": the run-data script is not closed");
  return parse_json_text(std::string_view(html).substr(begin, end - begin), kOrigin, path);
}

json write_run_report(const RunReportInputs& inputs, const fs::path& output) {
  json data = collect_run_report(inputs);
  write_file_atomic(output, render_run_report_html(data));
  return data;
}

}  // namespace ll
