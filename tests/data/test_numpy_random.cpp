// Tests of data/numpy_random: each stage of numpy's default_rng(seed).permutation(n) against
// numpy itself (tests/fixtures/numpy_permutation.json, written by
// scripts/fixtures/make_numpy_permutation_fixture.py with the numpy pinned in
// scripts/fixtures/requirements.txt). Stages are checked separately so a failure names the
// wrong one: SeedSequence words, PCG64 seeding and draws, then whole permutations.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "data/numpy_random.h"
#include "test_util.h"

namespace ll {
namespace {

using nlohmann::json;

const json& fixture() {
  static const json data = [] {
    const auto path = test::fixtures() / "numpy_permutation.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path.string());
    return json::parse(in);
  }();
  return data;
}

uint64_t parse_hex64(const json& value) {
  return std::stoull(value.get<std::string>(), nullptr, 16);
}

// A 128-bit "0x" + 32 hex digits string as (high, low).
std::pair<uint64_t, uint64_t> parse_hex128(const json& value) {
  const std::string text = value.get<std::string>();
  EXPECT_EQ(text.size(), 34u) << text;
  return {std::stoull(text.substr(2, 16), nullptr, 16),
          std::stoull(text.substr(18, 16), nullptr, 16)};
}

// FNV-1a 64 over each value's 8 little-endian bytes, as the fixture generator computes it.
uint64_t fnv1a64(const std::vector<uint64_t>& values) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (uint64_t value : values) {
    for (int byte = 0; byte < 8; ++byte) {
      hash ^= (value >> (8 * byte)) & 0xff;
      hash *= 0x100000001b3ULL;
    }
  }
  return hash;
}

TEST(NumpyRandom, FixtureRecordsNumpyVersion) {
  // Generator streams may change between numpy versions; the fixture says which one it pins.
  EXPECT_FALSE(fixture().at("numpy_version").get<std::string>().empty());
}

TEST(NumpyRandom, SeedSequenceMatchesNumpy) {
  const json& cases = fixture().at("seed_sequence");
  ASSERT_GE(cases.size(), 4u);
  for (const json& c : cases) {
    const uint64_t entropy = parse_hex64(c.at("entropy"));
    SCOPED_TRACE("SeedSequence(" + std::to_string(entropy) + ")");
    const SeedSequence seq(entropy);
    const auto pool = c.at("pool").get<std::vector<uint32_t>>();
    EXPECT_EQ(std::vector<uint32_t>(seq.pool().begin(), seq.pool().end()), pool);

    const auto words = c.at("state_u32").get<std::vector<uint32_t>>();
    EXPECT_EQ(seq.generate_state_u32(words.size()), words);

    std::vector<uint64_t> words64;
    for (const json& w : c.at("state_u64")) words64.push_back(parse_hex64(w));
    EXPECT_EQ(seq.generate_state_u64(words64.size()), words64);
  }
}

TEST(NumpyRandom, Pcg64SeedingAndDrawsMatchNumpy) {
  const json& cases = fixture().at("pcg64");
  ASSERT_GE(cases.size(), 3u);
  for (const json& c : cases) {
    const uint64_t seed = parse_hex64(c.at("seed"));
    SCOPED_TRACE("PCG64(" + std::to_string(seed) + ")");

    Pcg64 rng(seed);
    const Pcg64State state = rng.state();
    const auto [state_high, state_low] = parse_hex128(c.at("state"));
    const auto [inc_high, inc_low] = parse_hex128(c.at("inc"));
    EXPECT_EQ(state.state_high, state_high);
    EXPECT_EQ(state.state_low, state_low);
    EXPECT_EQ(state.inc_high, inc_high);
    EXPECT_EQ(state.inc_low, inc_low);

    for (const json& expected : c.at("next_uint64")) {
      EXPECT_EQ(rng.next_uint64(), parse_hex64(expected));
    }

    // 32-bit draws: low half of a 64-bit draw, then its buffered high half. The fixture has an
    // odd count, so the last one starts a fresh 64-bit draw.
    Pcg64 rng32(seed);
    for (const json& expected : c.at("next_uint32")) {
      EXPECT_EQ(rng32.next_uint32(), expected.get<uint32_t>());
    }
  }
}

TEST(NumpyRandom, PermutationMatchesNumpy) {
  const json& cases = fixture().at("permutation");
  ASSERT_GE(cases.size(), 4u);
  for (const json& c : cases) {
    const auto n = c.at("n").get<uint64_t>();
    const auto seed = c.at("seed").get<uint64_t>();
    SCOPED_TRACE("default_rng(" + std::to_string(seed) + ").permutation(" + std::to_string(n) +
                 ")");
    EXPECT_EQ(numpy_permutation(n, seed), c.at("values").get<std::vector<uint64_t>>());
  }
}

TEST(NumpyRandom, LargePermutationMatchesNumpy) {
  // Too big to store whole: the fixture keeps head, tail and a hash of all values. The head is
  // decided by the last draws and the tail by the first, so together they cover the whole run.
  const json& cases = fixture().at("permutation_summary");
  ASSERT_GE(cases.size(), 2u);
  for (const json& c : cases) {
    const auto n = c.at("n").get<uint64_t>();
    const auto seed = c.at("seed").get<uint64_t>();
    SCOPED_TRACE("default_rng(" + std::to_string(seed) + ").permutation(" + std::to_string(n) +
                 ")");
    const std::vector<uint64_t> perm = numpy_permutation(n, seed);
    ASSERT_EQ(perm.size(), n);
    const auto head = c.at("head").get<std::vector<uint64_t>>();
    const auto tail = c.at("tail").get<std::vector<uint64_t>>();
    EXPECT_EQ(std::vector<uint64_t>(perm.begin(), perm.begin() + static_cast<long>(head.size())),
              head);
    EXPECT_EQ(std::vector<uint64_t>(perm.end() - static_cast<long>(tail.size()), perm.end()), tail);
    EXPECT_EQ(fnv1a64(perm), parse_hex64(c.at("fnv1a64")));
  }
}

TEST(NumpyRandom, PermutationIsAPermutation) {
  // Independent of numpy: every index exactly once, and different seeds give different orders.
  std::vector<uint64_t> perm = numpy_permutation(5000, 23);
  EXPECT_NE(perm, numpy_permutation(5000, 24));
  std::sort(perm.begin(), perm.end());
  for (uint64_t i = 0; i < perm.size(); ++i) ASSERT_EQ(perm[i], i);
  EXPECT_TRUE(numpy_permutation(0, 23).empty());
  EXPECT_EQ(numpy_permutation(1, 23), std::vector<uint64_t>{0});
}

TEST(NumpyRandom, RandomIntervalStaysInRange) {
  // Covers the 64-bit branch (max >= 2^32), which no in-memory permutation reaches.
  Pcg64 rng(7);
  EXPECT_EQ(numpy_random_interval(rng, 0), 0u);
  for (uint64_t max : {1ULL, 2ULL, 5ULL, 0xffffffffULL, 0x100000000ULL, 0x1234567890ULL, ~0ULL}) {
    for (int k = 0; k < 200; ++k) ASSERT_LE(numpy_random_interval(rng, max), max) << max;
  }
  // max = 0 draws nothing, so it leaves the stream where it was.
  Pcg64 a(9), b(9);
  (void)numpy_random_interval(a, 0);
  EXPECT_EQ(a.next_uint64(), b.next_uint64());
}

}  // namespace
}  // namespace ll
