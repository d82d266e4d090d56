// The flags that say which rows of a dataset are held out, shared by `compare` and `eval`:
// the same split `train` makes (--preset's default plan: sql holds out 500 rows after the
// seed's shuffle with seed 23), overridable like `data-stats`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/held_out.h"

namespace CLI {
class App;
}

namespace ll {

struct HeldOutFlags {
  std::string data;
  std::string preset = "sql";
  bool skip_bad_rows = false;
  std::optional<uint64_t> seed;
  std::optional<uint64_t> train_rows;
  std::optional<uint64_t> eval_rows;
};

void add_held_out_flags(CLI::App& cmd, HeldOutFlags& flags);

// The flags as a dataset selection (data/dataset.h: the split train makes).
DatasetSelection dataset_selection(const HeldOutFlags& flags);

// Reads the file and returns its held-out conversations (data/held_out.h).
std::vector<HeldOutExample> read_held_out(const HeldOutFlags& flags);

}  // namespace ll
