// Shuffle and split: the seed's shuffle(seed=23) + select(range(...)) row choice, and what a
// smaller file does. Permutations below were printed by numpy 2.2.6:
//   numpy.random.default_rng(23).permutation(n)
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "data/split.h"

namespace ll {
namespace {

TEST(Split, TakesTrainThenEvalFromThePermutation) {
  // permutation(10) = [3, 6, 2, 5, 8, 7, 9, 0, 1, 4]
  const RowSplit split = split_rows(10, SplitPlan{23, 5, 3}, "d.jsonl");
  EXPECT_EQ(split.train, (std::vector<uint64_t>{3, 6, 2, 5, 8}));
  EXPECT_EQ(split.eval, (std::vector<uint64_t>{7, 9, 0}));  // rows 1 and 4 are used by neither
}

TEST(Split, SmallerFileKeepsTheEvalCount) {
  // permutation(6) = [5, 2, 3, 0, 1, 4]; 6 < 5 + 3: train on 6 - 3 rows
  const RowSplit split = split_rows(6, SplitPlan{23, 5, 3}, "d.jsonl");
  EXPECT_EQ(split.train, (std::vector<uint64_t>{5, 2, 3}));
  EXPECT_EQ(split.eval, (std::vector<uint64_t>{0, 1, 4}));
}

TEST(Split, SeedDefaultsOnTheSqlSample) {
  // The sample has 3,500 rows: eval keeps 500, train gets 3,000.
  // permutation(3500)[:5] = [2558, 3156, 2460, 683, 1035]; [3000:3003] = [533, 1390, 2974];
  // last = 52.
  const RowSplit split = split_rows(3500, SplitPlan{}, "sample-3500.jsonl");
  ASSERT_EQ(split.train.size(), 3000u);
  ASSERT_EQ(split.eval.size(), 500u);
  EXPECT_EQ(std::vector<uint64_t>(split.train.begin(), split.train.begin() + 5),
            (std::vector<uint64_t>{2558, 3156, 2460, 683, 1035}));
  EXPECT_EQ(std::vector<uint64_t>(split.eval.begin(), split.eval.begin() + 3),
            (std::vector<uint64_t>{533, 1390, 2974}));
  EXPECT_EQ(split.eval.back(), 52u);
  std::set<uint64_t> all(split.train.begin(), split.train.end());
  all.insert(split.eval.begin(), split.eval.end());
  EXPECT_EQ(all.size(), 3500u);

  const RowSplit big = split_rows(60000, SplitPlan{}, "big.jsonl");
  EXPECT_EQ(big.train.size(), 50000u);
  EXPECT_EQ(big.eval.size(), 500u);
}

TEST(Split, TooFewRowsIsAnError) {
  try {
    split_rows(500, SplitPlan{}, "tiny.jsonl");
    FAIL() << "500 rows cannot give 500 eval rows and a train split";
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()),
              "[data] tiny.jsonl: 500 rows, but 500 are held out for evaluation and at least one "
              "must be left to train on");
  }
  EXPECT_EQ(split_rows(501, SplitPlan{}, "d").train.size(), 1u);
  EXPECT_THROW(split_rows(0, SplitPlan{23, 10, 0}, "empty"), Error);
}

}  // namespace
}  // namespace ll
