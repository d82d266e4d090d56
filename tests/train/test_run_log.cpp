// The run log's figures and the run policy, alone: tokens/s, MFU and the comm share of an
// interval, this run's rate and ETA, and when a run evaluates and saves.
#include <gtest/gtest.h>

#include "train/run_log.h"
#include "train/run_policy.h"

namespace ll {
namespace {

TEST(RunLog, IntervalFiguresAndRunTotals) {
  RunLog log(PeakFlops{1000.0, "test peak"}, 2);
  log.add({2.0, 100, 600, 0.5});
  log.add({2.0, 300, 1400, 1.5});
  const nlohmann::json first = log.take_interval();
  EXPECT_DOUBLE_EQ(first["tokens_per_s"].get<double>(), 100.0);  // 400 tokens / 4 s
  EXPECT_DOUBLE_EQ(first["mfu"].get<double>(), 0.5);             // 2000 / (4 s x 1000)
  EXPECT_EQ(first["world_size"], 2);
  EXPECT_DOUBLE_EQ(first["comm_share"].get<double>(), 0.5);  // 2 of 4 s
  log.add({1.0, 50, 100, 0});
  const nlohmann::json second = log.take_interval();  // only the steps since the last line
  EXPECT_DOUBLE_EQ(second["tokens_per_s"].get<double>(), 50.0);
  EXPECT_DOUBLE_EQ(second["mfu"].get<double>(), 0.1);
  EXPECT_EQ(log.tokens(), 450);
  EXPECT_DOUBLE_EQ(log.tokens_per_s(), 90.0);        // 450 tokens / 5 s
  EXPECT_DOUBLE_EQ(log.eta_seconds(6), 10.0);        // 5 s / 3 steps x 6 steps
  const nlohmann::json empty = log.take_interval();  // no step: zero, MFU unknown
  EXPECT_DOUBLE_EQ(empty["tokens_per_s"].get<double>(), 0.0);
  EXPECT_TRUE(empty["mfu"].is_null());

  RunLog alone(std::nullopt, 1);
  alone.add({1.0, 10, 10, 0});
  const nlohmann::json line = alone.take_interval();
  EXPECT_TRUE(line["mfu"].is_null());
  EXPECT_FALSE(line.contains("world_size"));
  EXPECT_FALSE(line.contains("comm_share"));
  EXPECT_DOUBLE_EQ(RunLog(std::nullopt, 1).eta_seconds(5), 0.0);
}

// transformers' defaults: steps strategies.
RunPolicy steps_policy(int64_t eval_steps, int64_t save_steps, int64_t first_step, bool resumed) {
  return RunPolicy(
      Interval{IntervalStrategy::Steps, 1}, Interval{IntervalStrategy::Steps, eval_steps},
      Interval{IntervalStrategy::Steps, save_steps}, /*steps_per_epoch=*/100, first_step, resumed);
}

TEST(RunPolicy, EvaluatesAndSavesOnTheirStepsAndAtTheEnd) {
  RunPolicy fresh = steps_policy(/*eval_steps=*/2, /*save_steps=*/3, /*first_step=*/0, false);
  EXPECT_TRUE(fresh.eval_before_training());
  std::vector<int64_t> evals, saves;
  for (int64_t step = 1; step <= 6; ++step) {
    if (fresh.eval_after(step)) evals.push_back(step);
    if (fresh.save_after(step)) saves.push_back(step);
  }
  EXPECT_EQ(evals, (std::vector<int64_t>{2, 4, 6}));
  EXPECT_EQ(saves, (std::vector<int64_t>{3, 6}));
  EXPECT_FALSE(fresh.eval_at_end(6));  // step 6 just did both
  EXPECT_FALSE(fresh.save_at_end(6));
  EXPECT_TRUE(fresh.eval_at_end(7));
  EXPECT_TRUE(fresh.save_at_end(7));

  RunPolicy never = steps_policy(0, 0, 0, false);
  EXPECT_FALSE(never.eval_after(4));
  EXPECT_FALSE(never.save_after(4));
  EXPECT_TRUE(never.save_at_end(4));

  // Resumed at step 4 (its checkpoint): no eval before training; a stop before any new step
  // saves nothing, one after a step saves it.
  RunPolicy resumed = steps_policy(0, 0, 4, true);
  EXPECT_FALSE(resumed.eval_before_training());
  EXPECT_FALSE(resumed.save_at_stop(4));
  EXPECT_TRUE(resumed.save_at_stop(5));
  EXPECT_FALSE(resumed.save_at_end(4));  // finished where it resumed: already saved
  EXPECT_FALSE(resumed.eval_at_end(4));
  RunPolicy stopped = steps_policy(0, 2, 0, false);
  EXPECT_TRUE(stopped.save_after(2));
  EXPECT_FALSE(stopped.save_at_stop(2));  // just saved
  EXPECT_FALSE(stopped.save_at_stop(0));  // no step taken
}

// epoch: at every multiple of the steps per epoch (logging also at the last step, as
// transformers' on_epoch_end when max_steps ends an epoch early); no: never, not even at the
// end, before the first step or on a stop.
TEST(RunPolicy, EpochAndNoStrategies) {
  RunPolicy epochs(Interval{IntervalStrategy::Epoch, 1}, Interval{IntervalStrategy::Epoch, 1},
                   Interval{IntervalStrategy::Epoch, 1}, /*steps_per_epoch=*/3, 0, false);
  EXPECT_TRUE(epochs.eval_before_training());
  std::vector<int64_t> logs, evals, saves;
  for (int64_t step = 1; step <= 7; ++step) {
    if (epochs.log_after(step, 7)) logs.push_back(step);
    if (epochs.eval_after(step)) evals.push_back(step);
    if (epochs.save_after(step)) saves.push_back(step);
  }
  EXPECT_EQ(logs, (std::vector<int64_t>{3, 6, 7}));
  EXPECT_EQ(evals, (std::vector<int64_t>{3, 6}));
  EXPECT_EQ(saves, (std::vector<int64_t>{3, 6}));
  EXPECT_TRUE(epochs.eval_at_end(7));
  EXPECT_TRUE(epochs.save_at_end(7));

  RunPolicy none(Interval{IntervalStrategy::No, 1}, Interval{IntervalStrategy::No, 1},
                 Interval{IntervalStrategy::No, 1}, 3, 0, false);
  EXPECT_FALSE(none.eval_before_training());
  for (int64_t step = 1; step <= 7; ++step) {
    EXPECT_FALSE(none.log_after(step, 7));
    EXPECT_FALSE(none.eval_after(step));
    EXPECT_FALSE(none.save_after(step));
  }
  EXPECT_FALSE(none.eval_at_end(7));
  EXPECT_FALSE(none.save_at_end(7));
  EXPECT_FALSE(none.save_at_stop(5));

  // steps logging: every N, not at the last step.
  RunPolicy logging(Interval{IntervalStrategy::Steps, 2}, Interval{}, Interval{}, 3, 0, false);
  EXPECT_TRUE(logging.log_after(4, 5));
  EXPECT_FALSE(logging.log_after(5, 5));
  EXPECT_EQ(parse_interval_strategy("no"), IntervalStrategy::No);
  EXPECT_EQ(parse_interval_strategy("epoch"), IntervalStrategy::Epoch);
  EXPECT_EQ(parse_interval_strategy("steps"), IntervalStrategy::Steps);
}

}  // namespace
}  // namespace ll
