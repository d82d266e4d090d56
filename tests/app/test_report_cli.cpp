// `llama-lora report` from the command line: the page it writes and what it prints, on the
// fixture run of tests/tools/test_run_report.cpp, and its one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "test_util.h"

namespace ll {
namespace {

namespace fs = std::filesystem;

fs::path fixture() {
  return test::fixtures() / "run_report";
}

TEST(ReportCli, WritesThePageAndSaysWhatItHolds) {
  test::TempDir dir;
  const fs::path page = dir / "page.html";
  const test::CommandResult result = test::run_llama_lora(
      "report " + test::shell_quote((fixture() / "run").string()) + " -o " +
      test::shell_quote(page.string()) + " --eval " +
      test::shell_quote((fixture() / "eval-base.json").string()) + " --eval " +
      test::shell_quote((fixture() / "eval-tuned.json").string()) + " --compare " +
      test::shell_quote((fixture() / "compare.json").string()));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out,
            "report: " + page.string() + " (8 metrics lines, 2 eval files, examples)\n");
  std::ifstream in(page);
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("id=\"run-data\""), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // no fetch
  EXPECT_EQ(html.find("https://"), std::string::npos);
}

TEST(ReportCli, ACutRunIsReportedACorruptOneRefused) {
  test::TempDir dir;
  std::ifstream in(fixture() / "run" / "metrics.jsonl");
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  std::ofstream(dir / "metrics.jsonl") << first << "\n" << second.substr(0, 30);
  test::CommandResult result =
      test::run_llama_lora("report " + test::shell_quote(dir.path().string()));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "report: " + (dir / "report.html").string() +
                            " (1 metrics lines, 0 eval files, no examples); metrics.jsonl line 2 "
                            "is cut short, left out; the run did not finish\n");
  std::ofstream(dir / "metrics.jsonl") << first << "\nnot json\n" << second << "\n";
  test::expect_cli_error(test::run_llama_lora("report " + test::shell_quote(dir.path().string())),
                         (dir / "metrics.jsonl").string() + ":2: not valid JSON");
}

}  // namespace
}  // namespace ll
