// Tests of train/step_profile: op times by region path become seconds per step by phase
// (the innermost non-projection region: "recompute" inside "backward") and module (the
// projection), shares of the step, and the host time outside every op; the log table lists
// the phases and the ops above 0.5% of the step.
#include "train/step_profile.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace ll {
namespace {

TEST(StepProfile, SplitsRegionPathsIntoPhaseAndModuleAndDividesBySteps) {
  OpProfile profile;
  profile[{"forward/q_proj", "linear_forward"}] = {2.0, 4};
  profile[{"backward/recompute/q_proj", "linear_forward"}] = {1.0, 4};
  profile[{"backward", "attention_backward"}] = {3.0, 2};
  profile[{"lm_head", "cross_entropy_forward_backward"}] = {1.5, 2};
  profile[{"", "copy"}] = {0.004, 2};
  const ProfiledSteps steps{2, 10.0, 1.0};  // 2 steps of 5 s, 0.5 s of them communicating

  const nlohmann::json json = step_profile_json(profile, steps);
  EXPECT_EQ(json["steps"], 2);
  EXPECT_DOUBLE_EQ(json["step_s"].get<double>(), 5.0);
  EXPECT_DOUBLE_EQ(json["communication_s"].get<double>(), 0.5);
  // 5 s a step - 3.752 s in ops - 0.5 s communicating.
  EXPECT_NEAR(json["other_s"].get<double>(), 5.0 - 3.752 - 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(json["phases"]["forward"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(json["phases"]["recompute"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(json["phases"]["backward"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(json["phases"]["lm_head"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(json["phases"]["outside"].get<double>(), 0.002);

  const nlohmann::json& ops = json["ops"];
  ASSERT_EQ(ops.size(), 5u);
  for (size_t i = 1; i < ops.size(); ++i) {  // largest first
    EXPECT_GE(ops[i - 1]["s_per_step"].get<double>(), ops[i]["s_per_step"].get<double>());
  }
  EXPECT_EQ(ops[0]["op"], "attention_backward");
  EXPECT_EQ(ops[0]["phase"], "backward");
  EXPECT_EQ(ops[0]["module"], "");
  EXPECT_DOUBLE_EQ(ops[0]["share"].get<double>(), 0.3);
  EXPECT_DOUBLE_EQ(ops[0]["calls_per_step"].get<double>(), 1.0);
  EXPECT_EQ(ops[1]["module"], "q_proj");
  EXPECT_EQ(ops[1]["phase"], "forward");
  const auto recomputed = std::find_if(
      ops.begin(), ops.end(), [](const nlohmann::json& op) { return op["phase"] == "recompute"; });
  ASSERT_NE(recomputed, ops.end());
  EXPECT_EQ((*recomputed)["module"], "q_proj");

  const std::vector<std::string> table = step_profile_table(json);
  const auto has = [&](const std::string& text) {
    return std::any_of(table.begin(), table.end(), [&](const std::string& line) {
      return line.rfind("[profile]", 0) == 0 && line.find(text) != std::string::npos;
    });
  };
  EXPECT_TRUE(has("2 steady-state steps"));
  EXPECT_TRUE(has("phase recompute"));
  EXPECT_TRUE(has("communication"));
  // q_proj linear_forward summed over forward and recompute: 1.5 s a step, 30%.
  EXPECT_TRUE(has("q_proj linear_forward"));
  EXPECT_TRUE(has("30.0%"));
  EXPECT_FALSE(has(" copy "));  // 0.04% of the step: below the table's 0.5%
}

}  // namespace
}  // namespace ll
