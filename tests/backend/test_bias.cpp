// Tests of cpu/bias: bias_add against a naive loop (f32, bf16 and f16 biases, T = float and
// double), exactly: each element is one addition of values every type holds exactly, so the
// op and the loop round the same way; the guard after the output stays untouched.
#include "backend/cpu/bias.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "core/dtype.h"
#include "gradcheck.h"

namespace ll::cpu {
namespace {

using test::GuardedBuffer;
using test::random_values;

template <typename T>
void check_bias_add(DType dtype) {
  const int64_t tokens = 5, out = 37;
  const auto y0 = random_values<T>(static_cast<size_t>(tokens * out), 1);
  const auto values = random_values<float>(static_cast<size_t>(out), 2);
  std::vector<float> as_f32(values);
  std::vector<uint16_t> as_16(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    as_16[i] = dtype == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
    as_f32[i] = dtype == DType::BF16  ? bf16_to_f32(as_16[i])
                : dtype == DType::F16 ? f16_to_f32(as_16[i])
                                      : values[i];
  }
  const WeightView bias =
      dtype == DType::F32 ? WeightView{values.data(), DType::F32} : WeightView{as_16.data(), dtype};
  GuardedBuffer<T> y(y0);
  bias_add<T>(y.data(), bias, tokens, out);
  y.expect_guards_intact("y");
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t o = 0; o < out; ++o) {
      const size_t i = static_cast<size_t>(t * out + o);
      EXPECT_EQ(y.data()[i], y0[i] + static_cast<T>(as_f32[static_cast<size_t>(o)]))
          << "token " << t << ", output " << o;
    }
  }
}

TEST(BiasAdd, AddsTheBiasToEveryRowExactly) {
  for (const DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    check_bias_add<float>(dtype);
    check_bias_add<double>(dtype);
  }
}

TEST(BiasAdd, ZeroTokensWritesNothing) {
  const std::vector<float> bias = {1.0f, 2.0f};
  GuardedBuffer<float> y(size_t{0});
  bias_add<float>(y.data(), WeightView{bias.data(), DType::F32}, 0, 2);
  y.expect_guards_intact("y");
}

}  // namespace
}  // namespace ll::cpu
