// Tests of backend/profiling_backend: every op runs on the inner backend with the same result,
// and its time lands under the region path the caller was in (nested regions joined by '/',
// "" outside every region), one call counted per forwarded call; reset() forgets them.
#include "backend/profiling_backend.h"

#include <gtest/gtest.h>

#include <vector>

namespace ll {
namespace {

TEST(ProfilingBackend, ForwardsEveryOpAndTimesItUnderItsRegion) {
  Backend& cpu = cpu_backend();
  ProfilingBackend profiler(cpu);
  EXPECT_EQ(&profiler.inner(), &cpu);
  EXPECT_EQ(profiler.precision(), cpu.precision());
  EXPECT_EQ(profiler.memory_space(), cpu.memory_space());

  const int64_t n = 257;
  std::vector<float> gate(n), up(n), ours(n), direct(n);
  for (int64_t i = 0; i < n; ++i) {
    gate[static_cast<size_t>(i)] = static_cast<float>(i % 17) * 0.25f - 2.0f;
    up[static_cast<size_t>(i)] = static_cast<float>(i % 5) - 2.0f;
  }
  profiler.swiglu_forward(ours.data(), gate.data(), up.data(), n);  // outside every region
  {
    const BackendRegion backward(profiler, "backward");
    const BackendRegion recompute(profiler, "recompute");
    {
      const BackendRegion q(profiler, "q_proj");
      profiler.swiglu_forward(ours.data(), gate.data(), up.data(), n);
      profiler.swiglu_forward(ours.data(), gate.data(), up.data(), n);
    }
    profiler.scale(ours.data(), n, 1.0f);  // back in backward/recompute
  }
  cpu.swiglu_forward(direct.data(), gate.data(), up.data(), n);
  EXPECT_EQ(ours, direct);  // the same op, bit for bit

  const OpProfile& profile = profiler.profile();
  ASSERT_EQ(profile.size(), 3u);
  const auto calls = [&](const std::string& path, const std::string& op) -> int64_t {
    const auto it = profile.find({path, op});
    return it == profile.end() ? -1 : it->second.calls;
  };
  EXPECT_EQ(calls("", "swiglu_forward"), 1);
  EXPECT_EQ(calls("backward/recompute/q_proj", "swiglu_forward"), 2);
  EXPECT_EQ(calls("backward/recompute", "scale"), 1);
  for (const auto& [key, time] : profile) EXPECT_GE(time.seconds, 0.0) << key.first;

  profiler.reset();
  EXPECT_TRUE(profiler.profile().empty());
  profiler.zero(ours.data(), n);  // the regions were all popped: outside again
  EXPECT_EQ(profiler.profile().count({"", "zero"}), 1u);
}

TEST(ProfilingBackend, AnUnbalancedPopIsIgnored) {
  ProfilingBackend profiler(cpu_backend());
  profiler.pop_region();  // nothing pushed: stays outside
  std::vector<float> x(4, 1.0f);
  profiler.scale(x.data(), 4, 2.0f);
  EXPECT_EQ(profiler.profile().count({"", "scale"}), 1u);
  EXPECT_EQ(x[3], 2.0f);
}

}  // namespace
}  // namespace ll
