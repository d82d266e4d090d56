// The tiny model and data the trainer tests share: `llama-lora init --preset tiny` and 600
// synthetic sql rows from `make-data`, prepared once per test binary.
#pragma once

#include <memory>

#include "core/file.h"
#include "data/dataset.h"
#include "model/llama_weights.h"
#include "test_util.h"
#include "train/training_args.h"

namespace ll::test {

struct TinyRun {
  TempDir dir;
  fs::path model;
  fs::path data;
  std::unique_ptr<LlamaWeights> weights;
  PreparedData prepared;  // max_seq_length 64, 20 train rows, 40 eval rows
};

const TinyRun& tiny();

// 10 steps of 2 x 2 sequences on tiny(), writing to `output_dir` (LoRA r 4 on every
// projection, dropout 0.1, checkpoints every 5 steps).
TrainingArgs small_args(const fs::path& output_dir);

}  // namespace ll::test
