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

// `got` holds exactly `want`'s tensors, looked up by name: dtype, shape and every byte.
inline void expect_same_tensors_by_name(const TensorFile& got, const TensorFile& want) {
  ASSERT_EQ(got.tensors().size(), want.tensors().size());
  for (const TensorInfo& expected : want.tensors()) {
    SCOPED_TRACE(expected.name);
    const TensorInfo* info = got.find(expected.name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, expected.dtype);
    EXPECT_EQ(info->shape, expected.shape);
    const auto a = got.data(*info);
    const auto b = want.data(expected);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_TRUE(a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0) << "bytes differ";
  }
}

}  // namespace ll::test
