// The learning rate of every step, for each --lr_scheduler_type we accept, against
// transformers' get_scheduler driving a real torch.optim.AdamW (tests/fixtures/lr_schedules.json,
// scripts/fixtures/make_lr_schedule_fixture.py: transformers 5.25.0, torch 2.15.0), with
// warm-up given as steps and as a ratio.
//
// Tolerance: 1 ulp-level, 4e-16 relative (2 ulp of a double). Both sides compute in double with
// the same operations in the same order (torch's LambdaLR: base_lr * lr_lambda(step), the factor
// a Python float; lr_schedule.cpp does the same), so linear and the constants match exactly;
// cosine goes through the C library's cos on both sides, which is not required to round
// correctly, so a libm other than the generator's could differ in the last bit.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/file.h"
#include "test_util.h"
#include "train/lr_schedule.h"

namespace ll {
namespace {

nlohmann::json load_cases() {
  return nlohmann::json::parse(read_file(test::fixtures() / "lr_schedules.json")).at("cases");
}

TEST(LrSchedule, EveryStepMatchesTransformers) {
  const nlohmann::json cases = load_cases();
  ASSERT_FALSE(cases.empty());
  std::set<std::string> covered;
  for (const nlohmann::json& c : cases) {
    const std::string name = c.at("lr_scheduler_type");
    covered.insert(name);
    const int64_t total = c.at("total_steps");
    const int64_t warmup = warmup_steps_for(c.at("warmup_steps"), c.at("warmup_ratio"), total);
    const std::string where = name + ", " + std::to_string(total) + " steps, warm-up " +
                              c.at("warmup_steps").dump() + " / ratio " +
                              c.at("warmup_ratio").dump();
    ASSERT_GT(warmup, 0) << where;  // every case warms up (or, for constant, must not)
    EXPECT_EQ(warmup, c.at("warmup_steps_resolved").get<int64_t>()) << where;
    const nlohmann::json& rates = c.at("lr");
    ASSERT_EQ(rates.size(), static_cast<size_t>(total + 1)) << where;
    const LrSchedule schedule = parse_lr_schedule(name);
    for (int64_t step = 0; step <= total; ++step) {
      const double expected = rates[static_cast<size_t>(step)];
      const double ours = scheduled_lr(schedule, c.at("learning_rate"), step, warmup, total);
      EXPECT_NEAR(ours, expected, 4e-16 * std::abs(expected)) << where << ", step " << step;
    }
  }
  // Every schedule we accept has its cases.
  for (const std::string_view name : kLrScheduleNames) {
    EXPECT_TRUE(covered.count(std::string(name))) << name;
  }
}

TEST(LrSchedule, ConstantHasNoWarmUpAndConstantWithWarmupHasOne) {
  EXPECT_FALSE(lr_schedule_warms_up(LrSchedule::Constant));
  EXPECT_TRUE(lr_schedule_warms_up(LrSchedule::ConstantWithWarmup));
  EXPECT_DOUBLE_EQ(scheduled_lr(LrSchedule::Constant, 2.0, 0, 5, 10), 2.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(LrSchedule::ConstantWithWarmup, 2.0, 0, 5, 10), 0.0);
  EXPECT_EQ(lr_schedule_name(parse_lr_schedule("constant_with_warmup")), "constant_with_warmup");
}

TEST(LrSchedule, UnknownNameListsTheSupportedOnes) {
  try {
    parse_lr_schedule("cosine_with_restarts");
    FAIL() << "cosine_with_restarts parsed";
  } catch (const Error& error) {
    EXPECT_STREQ(error.what(),
                 "[train] --lr_scheduler_type: cosine_with_restarts is not supported (supported: "
                 "linear, cosine, constant, constant_with_warmup)");
  }
}

}  // namespace
}  // namespace ll
