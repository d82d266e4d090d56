// tests/fixtures/peft_patterns/ (scripts/fixtures/make_peft_pattern_fixtures.py): its folder, its
// input batch, and the error measure its tests bound.
#pragma once

#include <algorithm>
#include <cmath>
#include <span>

#include "formats/safetensors.h"
#include "model/llama_model.h"
#include "safetensors_test_util.h"
#include "test_util.h"

namespace ll::test {

inline fs::path peft_patterns_dir() {
  return fixtures() / "peft_patterns";
}

// max |ours - reference| / max |reference|
inline double max_relative_error(std::span<const float> ours, std::span<const float> reference) {
  EXPECT_EQ(ours.size(), reference.size());
  double worst = 0;
  double scale = 0;
  for (size_t i = 0; i < std::min(ours.size(), reference.size()); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(ours[i]) - reference[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(reference[i])));
  }
  return worst / std::max(scale, 1e-30);
}

// expected.safetensors' input_ids [rows, T] as one batch: positions 0..T-1, one document a row,
// no loss targets (the tests compare logits).
inline TokenBatch peft_patterns_batch(const SafetensorsModel& expected) {
  const std::vector<int64_t> ids = read_i64(expected, "input_ids");
  const auto& shape = expected.info("input_ids").shape;
  TokenBatch batch;
  batch.rows = shape[0];
  batch.seq_len = shape[1];
  for (size_t i = 0; i < ids.size(); ++i) {
    batch.input_ids.push_back(static_cast<int32_t>(ids[i]));
    batch.targets.push_back(-100);
    batch.positions.push_back(static_cast<int32_t>(static_cast<int64_t>(i) % shape[1]));
  }
  batch.document_starts.assign(static_cast<size_t>(batch.rows), {0});
  return batch;
}

}  // namespace ll::test
