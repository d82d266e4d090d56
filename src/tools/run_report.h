// The run report (`llama-lora report RUN_DIR`, and <output_dir>/report.html at the end of
// `train`): one self-contained HTML file, no network, that charts a run against its steps and
// lists what it was.
//
//   inputs    RUN_DIR/metrics.jsonl (train/metrics.h: a line per logging step, one per
//             evaluation, a summary line at the end: the one with "train_runtime_s");
//             RUN_DIR/training_args.json (else the newest checkpoint's); the checkpoint-<step>
//             folders; `eval --json` and `compare --json` outputs given as files, else
//             RUN_DIR/eval*.json and RUN_DIR/compare*.json (sorted by name).
//   crashes   metrics.jsonl is appended line by line, so a killed run can leave a cut last
//             line (no newline, not JSON): it is left out and the report says so. Any other
//             line that is not a JSON object is an error naming the file and line.
//   data      everything the page shows is one JSON object (collect_run_report), embedded in
//             the page as <script type="application/json" id="run-data"> (every '<' written
//             as \u003c, so no text of the run can end the script). The page's inline script
//             draws the charts from it as SVG; the golden test checks this object, the
//             Chromium test (scripts/check_report.py) what the browser draws of it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/file.h"

namespace ll {

struct RunReportInputs {
  fs::path run_dir;
  std::vector<fs::path> eval_files;      // empty: RUN_DIR/eval*.json
  std::optional<fs::path> compare_file;  // none: the first RUN_DIR/compare*.json, if any
};

// The report's data. Keys: format, written_by, run_dir, metrics {file, lines, cut_line,
// finished}, lines (the metrics lines but the summary), summary (or null), overview (steps,
// duration_s, tokens, final_train_loss, final_eval_loss, best_eval_loss, best_eval_step),
// settings [{group, items: [[name, value]]}], checkpoints [{name, step}], evals [...],
// compare (or null). Errors: "[report] FILE:LINE: ..." / "[report] FILE: ...".
nlohmann::json collect_run_report(const RunReportInputs& inputs);

// The HTML page of `data` (collect_run_report's object).
std::string render_run_report_html(const nlohmann::json& data);

// The data embedded in a page render_run_report_html wrote; "[report] PATH: ..." when the
// page has none.
nlohmann::json read_run_report_data(const std::string& html, const std::string& path);

// collect + render + write `output` atomically; returns the data.
nlohmann::json write_run_report(const RunReportInputs& inputs, const fs::path& output);

}  // namespace ll
