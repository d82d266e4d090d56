// What the model tests share about fixture files written by scripts/fixtures/ (golden,
// peft_patterns, bf16_autocast): the batch a file holds and the error measures they bound.
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "formats/safetensors.h"
#include "model/llama_model.h"
#include "safetensors_test_util.h"

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

// ||ours - reference||_2 / ||reference||_2
inline double relative_l2(std::span<const float> ours, std::span<const float> reference) {
  EXPECT_EQ(ours.size(), reference.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < std::min(ours.size(), reference.size()); ++i) {
    const double d = static_cast<double>(ours[i]) - reference[i];
    diff += d * d;
    norm += static_cast<double>(reference[i]) * reference[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

// The batch of a fixture file: input_ids [rows, T]; targets (already shifted) where the file
// has them, else none; position_ids where it has them, else 0..T-1 in every row; documents
// from document_ids where it has them, else one document a row.
inline TokenBatch fixture_batch(const SafetensorsModel& file) {
  const std::vector<int64_t> ids = read_i64(file, "input_ids");
  const auto& shape = file.info("input_ids").shape;
  std::vector<int64_t> targets(ids.size(), -100);
  if (file.contains("targets")) targets = read_i64(file, "targets");
  std::vector<int64_t> positions;
  if (file.contains("position_ids")) {
    positions = read_i64(file, "position_ids");
  } else {
    for (size_t i = 0; i < ids.size(); ++i) positions.push_back(static_cast<int64_t>(i) % shape[1]);
  }
  std::vector<int64_t> documents;
  if (file.contains("document_ids")) documents = read_i64(file, "document_ids");
  TokenBatch batch;
  batch.rows = shape[0];
  batch.seq_len = shape[1];
  for (size_t i = 0; i < ids.size(); ++i) {
    batch.input_ids.push_back(static_cast<int32_t>(ids[i]));
    batch.targets.push_back(static_cast<int32_t>(targets[i]));
    batch.positions.push_back(static_cast<int32_t>(positions[i]));
  }
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
