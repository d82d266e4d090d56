// core/random.h against published reference values: SplitMix64 seeded 0 (the reference C
// implementation, splitmix64.c by Sebastiano Vigna, prints these first three outputs) and
// FNV-1a 64 (the FNV authors' test vectors for "" and "a").
#include <gtest/gtest.h>

#include "core/random.h"

namespace ll {
namespace {

TEST(SplitMix64, StreamSeededZeroGivesTheReferenceOutputs) {
  SplitMix64 stream(0);
  EXPECT_EQ(stream.next(), 0xe220a8397b1dcdafull);
  EXPECT_EQ(stream.next(), 0x6e789e6aa1b965f4ull);
  EXPECT_EQ(stream.next(), 0x06c45d188009454full);
  // The hash form is the same stream: draw k of seed s is splitmix64(s + k·gamma).
  EXPECT_EQ(splitmix64(0), 0xe220a8397b1dcdafull);
  EXPECT_EQ(splitmix64(kSplitMix64Gamma), 0x6e789e6aa1b965f4ull);
  EXPECT_EQ(splitmix64_mix(2 * kSplitMix64Gamma), 0x6e789e6aa1b965f4ull);
}

TEST(SplitMix64, UnitIntervalUsesTheTop53Bits) {
  EXPECT_EQ(unit_interval(0), 0.0);
  EXPECT_EQ(unit_interval(~0ull), 1.0 - 0x1.0p-53);  // below 1, always
  EXPECT_EQ(unit_interval(1ull << 63), 0.5);
  EXPECT_EQ(unit_interval((1ull << 11) - 1), 0.0);  // the low 11 bits do not count
}

TEST(Fnv1a64, ReferenceVectors) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
}

}  // namespace
}  // namespace ll
