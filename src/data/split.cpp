// Shuffle and train/eval split: see split.h.
#include "data/split.h"

#include "core/error.h"
#include "core/text.h"
#include "data/numpy_random.h"

namespace ll {

RowSplit split_rows(uint64_t rows, const SplitPlan& plan, const std::string& origin) {
  if (rows <= plan.eval_rows) {
    fail("data", origin + ": " + format_count(rows) + " rows, but " + format_count(plan.eval_rows) +
                     " are held out for evaluation and at least one must be left to train on");
  }
  const std::vector<uint64_t> order = numpy_permutation(rows, plan.seed);
  // Enough rows: the seed's select(range(train)), select(range(train, train + eval)).
  // Fewer: keep the eval count, train on the rest.
  const uint64_t train =
      rows - plan.eval_rows >= plan.train_rows ? plan.train_rows : rows - plan.eval_rows;
  RowSplit split;
  split.train.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(train));
  split.eval.assign(order.begin() + static_cast<std::ptrdiff_t>(train),
                    order.begin() + static_cast<std::ptrdiff_t>(train + plan.eval_rows));
  return split;
}

}  // namespace ll
