// End to end on real data: `init --preset tiny`, then `train --recipe sql` on the seed's
// text-to-SQL sample (../shared/data/sql-create-context/sample-3500.jsonl) for 50 steps. The
// run must finish, write its adapter and checkpoint, and its eval loss (500 held-out rows,
// the seed's split) before and after training must be the pinned values. The recipe's lr 1e-5
// barely moves a random tiny model in 50 steps, so the test raises it (and shortens sequences) as
// the README's demo does.
//
// How long it takes is a benchmark question, not a test assertion: the test prints the wall
// time (2 quiet cores: 7.7 s for the training, 4.4 s for the whole test in CI, far inside the
// issue's 2 minutes). Under the sanitizers the run is ~20x slower, so that build skips it
// visibly; the release build always runs it.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace ll {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

TEST(TrainEndToEnd, TinyModelOnTheSeedSqlSampleLowersEvalLoss) {
  if (kSanitized)
    GTEST_SKIP() << "50 training steps are too slow under ASan; the release build runs this";
  const auto data = test::shared_data() / "sql-create-context" / "sample-3500.jsonl";
  LL_REQUIRE_SHARED(data);
  test::TempDir dir;
  const auto model = dir / "model";
  const auto run = dir / "run";
  ASSERT_EQ(
      test::run_llama_lora("init --preset tiny -o " + test::shell_quote(model.string())).exit_code,
      0);

  const auto start = std::chrono::steady_clock::now();
  const test::CommandResult result = test::run_llama_lora(
      "train --recipe sql --model " + test::shell_quote(model.string()) + " --data " +
      test::shell_quote(data.string()) + " --output_dir " + test::shell_quote(run.string()) +
      " --max_steps 50 --max_seq_length 256 --learning_rate 3e-3 --eval_steps 50"
      " --logging_steps 10 --save_steps 50 --bf16 False");  // the fp32 reference path
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::printf("[ e2e ] init tiny + train --recipe sql 50 steps: %.1f s wall\n", seconds);

  EXPECT_TRUE(std::filesystem::exists(run / "adapter_model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(run / "adapter_config.json"));
  EXPECT_TRUE(std::filesystem::exists(run / "checkpoint-50" / "trainer_state.json"));
  EXPECT_TRUE(std::filesystem::exists(run / "training_args.json"));
  EXPECT_TRUE(std::filesystem::exists(run / "report.html"));  // tests/tools/test_run_report.cpp
  EXPECT_NE(result.out.find("; report: " + (run / "report.html").string()), std::string::npos)
      << result.out;

  // metrics.jsonl: an eval line at step 0 (before training) and at step 50.
  std::ifstream metrics(run / "metrics.jsonl");
  ASSERT_TRUE(metrics) << "no metrics.jsonl";
  std::vector<std::pair<int64_t, double>> evals;
  for (std::string line; std::getline(metrics, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row.contains("eval_loss"))
      evals.emplace_back(row["step"].get<int64_t>(), row["eval_loss"].get<double>());
  }
  ASSERT_GE(evals.size(), 2u);
  std::printf("[ e2e ] eval loss %.9g -> %.9g\n", evals.front().second, evals.back().second);
  EXPECT_EQ(evals.front().first, 0);
  EXPECT_EQ(evals.back().first, 50);
  // The run is deterministic for its seed: pinned to what it gave when written (bit-identical
  // with 1 and 2 OpenMP threads). 1e-3 nats is above what another CPU's fp32 summation order
  // (AVX2 instead of AVX-512 kernels) moves 50 steps, and far below what a change of the data
  // order or the schedule moves (measured: --seed 43 -0.020, --warmup_steps 10 +0.037, cosine
  // +0.028, lr 2.9e-3 instead of 3e-3 +0.017). A change of numerics on purpose (bf16 compute)
  // re-pins it, and so does a new dropout mask function (the 32-bit hash moved it from
  // 4.71828639 by -0.0037); this run asks for fp32 (--bf16 False) so the pin holds on any CPU.
  EXPECT_NEAR(evals.front().second, 8.88853129, 1e-3);  // before training: init + data only
  EXPECT_NEAR(evals.back().second, 4.71462261, 1e-3)
      << "eval loss " << evals.front().second << " -> " << evals.back().second;
}

}  // namespace
}  // namespace ll
