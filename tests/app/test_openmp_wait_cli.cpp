// OpenMP threads wait passively unless the user says otherwise, set inside the process
// (src/backend/cpu/openmp_wait_policy.cpp). libgomp's OMP_DISPLAY_ENV=verbose prints the spin
// count it runs with: 0 under PASSIVE, 300000 for its default, 30 billion for ACTIVE. The
// binary prints it once per start: the first start reads the unset variable, the restart the
// passive one, so the last report is what the running process uses.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "test_util.h"

namespace ll {
namespace {

// The last "GOMP_SPINCOUNT = '...'" libgomp printed.
std::string spin_count_in_use(const std::string& environment) {
  const test::CommandResult result =
      test::run_command("env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT " + environment +
                        " OMP_DISPLAY_ENV=verbose " + test::shell_quote(LL_BINARY) + " --version");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("llama-lora"), std::string::npos) << result.out;
  const std::string key = "GOMP_SPINCOUNT = '";
  const size_t at = result.err.rfind(key);
  if (at == std::string::npos) {
    ADD_FAILURE() << "libgomp printed no GOMP_SPINCOUNT: " << result.err;
    return "";
  }
  const size_t begin = at + key.size();
  return result.err.substr(begin, result.err.find('\'', begin) - begin);
}

TEST(OpenmpWait, PassiveWhenTheUserSetsNothing) {
  EXPECT_EQ(spin_count_in_use(""), "0");
}

TEST(OpenmpWait, TheUsersSettingIsKept) {
  EXPECT_EQ(spin_count_in_use("OMP_WAIT_POLICY=ACTIVE"), "30000000000");
  EXPECT_EQ(spin_count_in_use("GOMP_SPINCOUNT=1000"), "1000");
}

// This test binary links the CPU backend too, and ctest sets no OpenMP variable for it.
TEST(OpenmpWait, TestProcessesWaitPassively) {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  if (policy == nullptr && std::getenv("GOMP_SPINCOUNT") != nullptr) {
    GTEST_SKIP() << "GOMP_SPINCOUNT is set by the caller";
  }
  ASSERT_NE(policy, nullptr);
}

}  // namespace
}  // namespace ll
