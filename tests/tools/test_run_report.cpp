// The run report's data (tools/run_report.h), read back from the page as a browser gets it:
// a golden of the whole object for a real 4-step run (tests/fixtures/run_report, written by
// scripts/fixtures/make_run_report_fixture.sh), its figures checked one by one, and the runs
// that went wrong: a cut last line, a corrupt line, text that tries to end the data script.
// What Chromium draws of it is scripts/check_report.py's test (ctest report.chromium).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/file.h"
#include "test_util.h"
#include "tools/run_report.h"

namespace ll {
namespace {

using json = nlohmann::json;
using test::TempDir;

fs::path fixture() {
  return test::fixtures() / "run_report";
}

RunReportInputs fixture_inputs() {
  return {fixture() / "run",
          {fixture() / "eval-base.json", fixture() / "eval-tuned.json"},
          fixture() / "compare.json"};
}

// The data as the page carries it: rendered, then read back out of the HTML.
json page_data(const RunReportInputs& inputs) {
  return read_run_report_data(render_run_report_html(collect_run_report(inputs)), "report.html");
}

std::string error_of(const RunReportInputs& inputs) {
  try {
    collect_run_report(inputs);
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::vector<std::string> fixture_metrics_lines() {
  std::ifstream in(fixture() / "run" / "metrics.jsonl");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line + "\n");
  return lines;
}

TEST(RunReport, EmbeddedDataMatchesTheGolden) {
  json data = page_data(fixture_inputs());
  data["run_dir"] = "run";  // the checkout's absolute path
  const fs::path golden = fixture() / "report_data.json";
  if (std::getenv("LL_WRITE_REPORT_GOLDEN") != nullptr) {
    write_file_atomic(golden, data.dump(2) + "\n");
    GTEST_SKIP() << "wrote " << golden;
  }
  const json expected = json::parse(read_file(golden));
  EXPECT_EQ(data, expected) << "differences (RFC 6902, golden -> now): "
                            << json::diff(expected, data).dump();
}

TEST(RunReport, SummarisesTheRunFromItsFiles) {
  const json data = page_data(fixture_inputs());
  // 8 lines: 3 evaluations (steps 0, 2, 4), 4 logging steps, the summary.
  EXPECT_EQ(data["metrics"]["lines"], 8);
  EXPECT_TRUE(data["metrics"]["cut_line"].is_null());
  EXPECT_EQ(data["metrics"]["finished"], true);
  ASSERT_EQ(data["lines"].size(), 7u);
  EXPECT_EQ(data["summary"]["train_tokens"], 4096);
  const json& o = data["overview"];
  EXPECT_EQ(o["steps"], 4);
  EXPECT_EQ(o["tokens"], 4096);
  EXPECT_DOUBLE_EQ(o["duration_s"].get<double>(), 0.388771319);  // the summary's elapsed_s
  EXPECT_DOUBLE_EQ(o["final_train_loss"].get<double>(), 8.295617000324519);
  EXPECT_DOUBLE_EQ(o["train_loss"].get<double>(), 8.449279939453653);
  EXPECT_DOUBLE_EQ(o["final_eval_loss"].get<double>(), 7.829718208861077);
  EXPECT_DOUBLE_EQ(o["best_eval_loss"].get<double>(), 7.829718208861077);
  EXPECT_EQ(o["best_eval_step"], 4);
  EXPECT_EQ(o["world_size"], 1);
  EXPECT_EQ(data["checkpoints"],
            json::parse(R"([{"name":"checkpoint-2","step":2},{"name":"checkpoint-4","step":4}])"));
  // Settings in train --help's groups, the non-flags last.
  ASSERT_GE(data["settings"].size(), 3u);
  EXPECT_EQ(data["settings"][0]["group"], "Model and data");
  EXPECT_EQ(data["settings"][0]["items"][0], json::parse(R"(["model","model"])"));
  bool lora_r = false;
  for (const json& group : data["settings"]) {
    for (const json& item : group["items"]) {
      if (item[0] == "lora_r") lora_r = group["group"] == "LoRA (peft.LoraConfig)" && item[1] == 8;
    }
  }
  EXPECT_TRUE(lora_r);
  EXPECT_EQ(data["settings"].back()["group"], "Run (precision, version)");
  ASSERT_EQ(data["evals"].size(), 2u);
  EXPECT_EQ(data["evals"][0]["file"], "eval-base.json");
  EXPECT_TRUE(data["evals"][0]["adapter"].is_null());
  EXPECT_EQ(data["evals"][1]["adapter"], "run");
  EXPECT_EQ(data["evals"][1]["sql"]["rows"], 2);
  EXPECT_EQ(data["compare"]["examples"].size(), 2u);
}

TEST(RunReport, ACutLastLineIsLeftOutAndSaidSo) {
  TempDir dir;
  const auto lines = fixture_metrics_lines();
  write_text(dir / "metrics.jsonl", lines[0] + lines[1] + lines[2] + lines[3].substr(0, 40));
  const json data = page_data({dir.path(), {}, std::nullopt});
  EXPECT_EQ(data["metrics"]["lines"], 3);
  EXPECT_EQ(data["metrics"]["cut_line"], 4);
  EXPECT_EQ(data["metrics"]["finished"], false);
  EXPECT_TRUE(data["summary"].is_null());
  EXPECT_EQ(data["lines"].size(), 3u);
  EXPECT_EQ(data["overview"]["steps"], 2);
  EXPECT_DOUBLE_EQ(data["overview"]["duration_s"].get<double>(), 0.086524671);
  EXPECT_TRUE(data["overview"]["tokens"].is_null());
  EXPECT_TRUE(data["settings"].empty());  // no training_args.json, no checkpoint
  EXPECT_TRUE(data["evals"].empty());
}

TEST(RunReport, ACorruptLineIsAnErrorNamingTheFileAndLine) {
  TempDir dir;
  const auto lines = fixture_metrics_lines();
  const fs::path metrics = dir / "metrics.jsonl";
  write_text(metrics, lines[0] + lines[1] + "{\"step\": 2, \"loss\": \n" + lines[3]);
  std::string error = error_of({dir.path(), {}, std::nullopt});
  EXPECT_EQ(error.rfind("[report] " + metrics.string() + ":3: not valid JSON", 0), 0u) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  // A broken last line that did end with a newline was written whole: corrupt, not cut.
  write_text(metrics, lines[0] + "{\"step\": 2, \"lo\n");
  error = error_of({dir.path(), {}, std::nullopt});
  EXPECT_NE(error.find(metrics.string() + ":2: not valid JSON"), std::string::npos) << error;
  write_text(metrics, lines[0] + "[1, 2]\n");
  EXPECT_EQ(error_of({dir.path(), {}, std::nullopt}),
            "[report] " + metrics.string() + ":2: a metrics line must be a JSON object, not array");
  write_text(metrics, "{\"loss\": 2}\n");
  EXPECT_EQ(error_of({dir.path(), {}, std::nullopt}),
            "[report] " + metrics.string() + ":1: no integer \"step\"");
}

TEST(RunReport, NotARunFolderIsAnError) {
  TempDir dir;
  EXPECT_EQ(
      error_of({dir.path(), {}, std::nullopt}),
      "[report] " + (dir / "metrics.jsonl").string() + ": missing (not a training run's folder)");
  write_text(dir / "metrics.jsonl", "");
  write_text(dir / "eval.json", "{\"model\": \"m\"}");
  EXPECT_EQ(error_of({dir.path(), {}, std::nullopt}),
            "[report] " + (dir / "eval.json").string() +
                ": no \"eval_loss\" (not the output of `llama-lora eval --json`)");
}

TEST(RunReport, FindsEvalAndCompareFilesInTheRunFolder) {
  TempDir dir;
  fs::copy(fixture() / "run", dir.path(), fs::copy_options::recursive);
  fs::copy(fixture() / "eval-tuned.json", dir / "eval-2-tuned.json");
  fs::copy(fixture() / "eval-base.json", dir / "eval-1-base.json");
  fs::copy(fixture() / "compare.json", dir / "compare.json");
  const json data = page_data({dir.path(), {}, std::nullopt});
  ASSERT_EQ(data["evals"].size(), 2u);
  EXPECT_EQ(data["evals"][0]["file"], "eval-1-base.json");  // by name
  EXPECT_EQ(data["evals"][1]["file"], "eval-2-tuned.json");
  EXPECT_EQ(data["compare"]["file"], "compare.json");
}

TEST(RunReport, TextOfTheRunCannotEndTheDataScript) {
  TempDir dir;
  fs::copy(fixture() / "run" / "metrics.jsonl", dir / "metrics.jsonl");
  json compare = json::parse(read_file(fixture() / "compare.json"));
  const std::string hostile = "</script><script>document.title='x'</script><!--";
  compare["examples"][0]["base_output"] = hostile;
  write_text(dir / "compare.json", compare.dump());
  const std::string html =
      render_run_report_html(collect_run_report({dir.path(), {}, std::nullopt}));
  EXPECT_EQ(html.find("</script><script>document.title"), std::string::npos);
  const json data = read_run_report_data(html, "report.html");
  EXPECT_EQ(data["compare"]["examples"][0]["base_output"], hostile);
}

TEST(RunReport, InvalidUtf8BecomesReplacementCharacters) {
  // A folder name need not be UTF-8; the page is.
  const json data = {{"run_dir", std::string("run-\xff\xfe")}};
  EXPECT_EQ(read_run_report_data(render_run_report_html(data), "report.html")["run_dir"],
            "run-\xEF\xBF\xBD\xEF\xBF\xBD");
}

}  // namespace
}  // namespace ll
