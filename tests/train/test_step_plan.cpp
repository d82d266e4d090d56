// The step plan alone: step counts as HF Trainer counts them, every sequence of an epoch
// visited exactly once over the steps, micro-batches and data-parallel ranks, the short
// last step, drop_last, the micro-batch indices that name dropout masks, and bad settings.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "core/error.h"
#include "train/batches.h"
#include "train/step_plan.h"

namespace ll {
namespace {

StepPlanSettings settings(uint64_t sequences, int64_t batch, int64_t accumulation,
                          int64_t dp_size = 1) {
  StepPlanSettings s;
  s.sequences = sequences;
  s.batch_rows = batch;
  s.accumulation = accumulation;
  s.dp_size = dp_size;
  s.shuffle_seed = 42;
  return s;
}

TEST(StepPlan, CountsStepsAsTheTrainerDoes) {
  StepPlanSettings s = settings(10, 2, 2);      // 4 rows a step
  EXPECT_EQ(StepPlan(s).steps_per_epoch(), 3);  // ceil(10 / 4)
  EXPECT_EQ(StepPlan(s).total_steps(), 3);      // one epoch
  s.epochs = 2.5;
  EXPECT_EQ(StepPlan(s).total_steps(), 8);  // ceil(2.5 x 3)
  s.max_steps = 5;
  EXPECT_EQ(StepPlan(s).total_steps(), 5);  // wins over epochs
  s.drop_last = true;
  EXPECT_EQ(StepPlan(s).steps_per_epoch(), 2);  // floor(10 / 4)
  s.dp_size = 2;                                // 8 rows a step
  EXPECT_EQ(StepPlan(s).rows_per_step(), 8);
  EXPECT_EQ(StepPlan(s).steps_per_epoch(), 1);
}

// Every rank's micro-batches of every step of epoch `epoch`, as (sequence -> times seen).
std::map<uint64_t, int> visits(StepPlanSettings s, int64_t epoch, int64_t* short_micro = nullptr) {
  std::map<uint64_t, int> seen;
  for (int64_t rank = 0; rank < s.dp_size; ++rank) {
    s.dp_rank = rank;
    StepPlan plan(s);
    for (int64_t step = epoch * plan.steps_per_epoch(); step < (epoch + 1) * plan.steps_per_epoch();
         ++step) {
      for (const PlannedMicroBatch& micro : plan.micro_batches(step)) {
        EXPECT_LE(micro.rows.size(), static_cast<size_t>(s.batch_rows));
        if (short_micro && micro.rows.size() < static_cast<size_t>(s.batch_rows)) ++*short_micro;
        EXPECT_EQ(micro.index % s.dp_size, rank) << "the index names the rank";
        for (uint64_t row : micro.rows) ++seen[row];
      }
    }
  }
  return seen;
}

TEST(StepPlan, AnEpochVisitsEverySequenceOnceOverRanksAndMicroBatches) {
  for (int64_t dp : {1, 2, 3}) {
    int64_t short_micro = 0;
    const auto seen = visits(settings(23, 2, 3, dp), 1, &short_micro);
    ASSERT_EQ(seen.size(), 23u) << "dp " << dp;
    for (const auto& [row, times] : seen) EXPECT_EQ(times, 1) << "row " << row << " dp " << dp;
    EXPECT_GE(short_micro, 0);
  }
  // drop_last: the leftover sequences of the epoch are not visited; every micro-batch full.
  StepPlanSettings s = settings(23, 2, 3, 2);  // 12 rows a step: 1 step, 11 left over
  s.drop_last = true;
  int64_t short_micro = 0;
  EXPECT_EQ(visits(s, 0, &short_micro).size(), 12u);
  EXPECT_EQ(short_micro, 0);
}

TEST(StepPlan, FollowsTheEpochOrderAndInterleavesRanksByMicroBatch) {
  StepPlanSettings s = settings(10, 2, 2, 2);  // 8 rows a step, 2 steps an epoch
  s.dp_rank = 1;
  StepPlan plan(s);
  const std::vector<uint64_t> order = epoch_order(10, 42, 1);
  // Step 2 is epoch 1's first: rank 1 holds positions [2, 4) and [6, 8) of its order.
  const auto micro = plan.micro_batches(2);
  ASSERT_EQ(micro.size(), 2u);
  EXPECT_EQ(micro[0].rows, (std::vector<uint64_t>{order[2], order[3]}));
  EXPECT_EQ(micro[0].index, 1);
  EXPECT_EQ(micro[1].rows, (std::vector<uint64_t>{order[6], order[7]}));
  EXPECT_EQ(micro[1].index, 3);
  // Step 3, the short last step (positions 8, 9): rank 1 gets nothing, rank 0 both.
  EXPECT_TRUE(plan.micro_batches(3).empty());
  s.dp_rank = 0;
  const auto last = StepPlan(s).micro_batches(3);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].rows, (std::vector<uint64_t>{order[8], order[9]}));
}

TEST(StepPlan, BadSettingsAreOneLineErrors) {
  const auto error_of = [](StepPlanSettings s) {
    try {
      StepPlan plan(s);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(error_of(settings(0, 1, 1)).find("no usable rows"), std::string::npos);
  EXPECT_NE(error_of(settings(4, 0, 1)).find("must be at least 1"), std::string::npos);
  StepPlanSettings few = settings(3, 2, 2);
  few.drop_last = true;
  EXPECT_NE(error_of(few).find("--dataloader_drop_last"), std::string::npos);
  StepPlanSettings none = settings(4, 1, 1);
  none.epochs = 0;
  EXPECT_NE(error_of(none).find("nothing to train"), std::string::npos);
  StepPlanSettings rank = settings(4, 1, 1, 2);
  rank.dp_rank = 2;
  EXPECT_NE(error_of(rank).find("not a valid rank"), std::string::npos);
}

}  // namespace
}  // namespace ll
