// Shuffle and train/eval split, as the seed does with Hugging Face datasets:
//   dataset.shuffle(seed=23); train = select(range(50000)); eval = select(range(50000, 50500))
// `Dataset.shuffle(seed)` orders rows by numpy.random.default_rng(seed).permutation(n)
// (data/numpy_random.h), so with the same file and seed we pick the same rows.
//
// A file with fewer than train_rows + eval_rows rows keeps the eval count and trains on the
// rest: train = permuted[0, n - eval_rows), eval = permuted[n - eval_rows, n). A file with
// n <= eval_rows rows is an error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ll {

struct SplitPlan {
  uint64_t seed = 23;
  uint64_t train_rows = 50000;
  uint64_t eval_rows = 500;
};

struct RowSplit {
  std::vector<uint64_t> train;  // row positions in the file, in shuffled order
  std::vector<uint64_t> eval;
};

// `origin` names the data file in the error for a file that is too small.
RowSplit split_rows(uint64_t rows, const SplitPlan& plan, const std::string& origin);

}  // namespace ll
