// Reading fixture tensors in tests (header-only: only the layers that link formats/ use it).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace ll::test {

// An I64 tensor of a fixture file (token ids, labels, positions).
inline std::vector<int64_t> read_i64(const SafetensorsModel& file, const std::string& name) {
  const TensorInfo& info = file.info(name);
  EXPECT_EQ(info.dtype, DType::I64) << name;
  const auto bytes = file.data(name);
  std::vector<int64_t> values(static_cast<size_t>(info.numel()));
  std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

}  // namespace ll::test
