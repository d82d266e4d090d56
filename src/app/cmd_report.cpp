// `llama-lora report RUN_DIR [-o FILE.html] [--eval FILE]... [--compare FILE]`: the run's
// self-contained HTML report (tools/run_report.h); default output RUN_DIR/report.html. `train`
// writes the same page at its end.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "app/cli.h"
#include "tools/run_report.h"

namespace ll {
namespace {

struct ReportCliOptions {
  std::string run_dir;
  std::string output;
  std::vector<std::string> eval_files;
  std::string compare_file;
};

void run_report(const ReportCliOptions& cli) {
  RunReportInputs inputs;
  inputs.run_dir = cli.run_dir;
  for (const std::string& file : cli.eval_files) inputs.eval_files.emplace_back(file);
  if (!cli.compare_file.empty()) inputs.compare_file = cli.compare_file;
  const fs::path output =
      cli.output.empty() ? inputs.run_dir / "report.html" : fs::path(cli.output);
  const nlohmann::json data = write_run_report(inputs, output);
  const nlohmann::json& metrics = data["metrics"];
  std::string note;
  if (!metrics["cut_line"].is_null()) {
    note = "; metrics.jsonl line " + metrics["cut_line"].dump() + " is cut short, left out";
  }
  if (!metrics["finished"].get<bool>()) note += "; the run did not finish";
  std::printf("report: %s (%s metrics lines, %zu eval files, %s)%s\n", output.c_str(),
              metrics["lines"].dump().c_str(), data["evals"].size(),
              data["compare"].is_null() ? "no examples" : "examples", note.c_str());
}

}  // namespace

void add_report_command(CLI::App& app) {
  auto options = std::make_shared<ReportCliOptions>();
  auto* cmd = app.add_subcommand(
      "report",
      "Write a training run's report: one self-contained HTML file with its curves, settings, "
      "checkpoints and eval results");
  cmd->add_option("run_dir", options->run_dir, "the run's --output_dir (holds metrics.jsonl)")
      ->required();
  cmd->add_option("-o,--output", options->output,
                  "HTML file to write (default RUN_DIR/report.html)");
  cmd->add_option("--eval", options->eval_files,
                  "`llama-lora eval --json` output, one column each (repeatable; default: "
                  "RUN_DIR/eval*.json)");
  cmd->add_option("--compare", options->compare_file,
                  "`llama-lora compare --json` output (default: the first RUN_DIR/compare*.json)");
  cmd->callback([options] { run_report(*options); });
}

}  // namespace ll
