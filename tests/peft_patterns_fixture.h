// tests/fixtures/peft_patterns/ (scripts/fixtures/make_peft_pattern_fixtures.py): its folder, its
// input batch; the error measure its tests bound is fixture_batch.h's.
#pragma once

#include "fixture_batch.h"

namespace ll::test {

inline fs::path peft_patterns_dir() {
  return fixtures() / "peft_patterns";
}

// expected.safetensors' input_ids [rows, T] as one batch: positions 0..T-1, one document a row,
// no loss targets (the tests compare logits).
inline TokenBatch peft_patterns_batch(const SafetensorsModel& expected) {
  return fixture_batch(expected);
}

}  // namespace ll::test
