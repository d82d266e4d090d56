// What the transformers fixtures (tests/fixtures/golden, peft_patterns, arch) share: the input
// batch of an expected.safetensors and the error measure their tests bound.
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "formats/safetensors.h"
#include "model/llama_model.h"
#include "safetensors_test_util.h"
#include "test_util.h"

namespace ll::test {

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

// A fixture's input_ids [rows, T] as one batch: `targets` (already shifted) where the file has
// them, else none (-100); position_ids where given, else 0..T-1 in every row; the documents
// of document_ids where given, else one a row.
inline TokenBatch fixture_batch(const SafetensorsModel& expected) {
  const auto ids = read_i64(expected, "input_ids");
  const auto& shape = expected.info("input_ids").shape;
  TokenBatch batch;
  batch.rows = shape[0];
  batch.seq_len = shape[1];
  std::vector<int64_t> targets(ids.size(), -100);
  if (expected.contains("targets")) targets = read_i64(expected, "targets");
  std::vector<int64_t> positions;
  if (expected.contains("position_ids")) {
    positions = read_i64(expected, "position_ids");
  } else {
    for (size_t i = 0; i < ids.size(); ++i) positions.push_back(static_cast<int64_t>(i) % shape[1]);
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    batch.input_ids.push_back(static_cast<int32_t>(ids[i]));
    batch.targets.push_back(static_cast<int32_t>(targets[i]));
    batch.positions.push_back(static_cast<int32_t>(positions[i]));
  }
  std::vector<int64_t> documents;
  if (expected.contains("document_ids")) documents = read_i64(expected, "document_ids");
  for (int64_t row = 0; row < batch.rows; ++row) {
    std::vector<uint32_t> starts = {0};
    for (int64_t t = 1; t < batch.seq_len && !documents.empty(); ++t) {
      const size_t i = static_cast<size_t>(row * batch.seq_len + t);
      if (documents[i] != documents[i - 1]) starts.push_back(static_cast<uint32_t>(t));
    }
    batch.document_starts.push_back(starts);
  }
  return batch;
}

}  // namespace ll::test
