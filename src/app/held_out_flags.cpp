// See held_out_flags.h.
#include "app/held_out_flags.h"

#include <CLI/CLI.hpp>

#include "data/dataset.h"

namespace ll {

void add_held_out_flags(CLI::App& cmd, HeldOutFlags& flags) {
  cmd.add_option("--data", flags.data, "Dataset file: JSON lines or a JSON array")->required();
  cmd.add_option("--preset", flags.preset, "Record format: sql, messages or alpaca")
      ->check(CLI::IsMember({"sql", "messages", "alpaca"}))
      ->capture_default_str();
  cmd.add_flag("--skip_bad_rows", flags.skip_bad_rows,
               "Skip rows that are not valid JSON or lack a field, instead of failing");
  cmd.add_option("--seed", flags.seed, "Shuffle seed of the split (default 23, as train)");
  cmd.add_option("--train_rows", flags.train_rows,
                 "Rows for training (sql default 50000; others: all but the eval rows)");
  cmd.add_option("--eval_rows", flags.eval_rows, "Rows held out for evaluation (sql default 500)");
}

DatasetSelection dataset_selection(const HeldOutFlags& flags) {
  return DatasetSelection::from_flags(flags.preset, flags.skip_bad_rows, flags.seed,
                                      flags.train_rows, flags.eval_rows);
}

std::vector<HeldOutExample> read_held_out(const HeldOutFlags& flags) {
  const DatasetSelection selection = dataset_selection(flags);
  return held_out_examples(read_records(flags.data, selection.bad_rows), selection.preset,
                           selection.split_plan(), selection.bad_rows);
}

}  // namespace ll
