// Tests of the LoRA down-projection with its dropout folded in (cpu/gemm_thin.h
// lora_down_forward / lora_down_backward, Backend::lora_down_*): bit for bit the values of
// dropout_forward / dropout_backward around gemm_thin's products, which is what the model ran
// before the fold (so the golden, checkpointing and finite-difference tests of the LoRA path
// keep their meaning): fp32 and bf16 operands, ragged sizes, ranks 8 and 13, a
// tensor-parallel window, mask indices crossing 2³² inside a 16-lane vector, and the
// backend's unfolded path for shapes the kernels do not take.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/dropout.h"
#include "backend/cpu/gemm_thin.h"
#include "gradcheck.h"

namespace ll::cpu {
namespace {

using test::random_values;

struct Case {
  const char* name;
  int64_t tokens, in, r;
  double p;
  DropoutWindow window;
};

const Case kCases[] = {
    {"smol-like, r 8", 300, 200, 8, 0.05, {}},
    {"ragged, r 13, p 0.5", 301, 333, 13, 0.5, {}},
    // Rank 1 of 3 of a row-parallel projection: columns [333, 666) of a 999-column input.
    {"tensor-parallel window", 257, 333, 8, 0.1, {333, 999, 333}},
    // Row stride 2³¹ - 3: row 2 starts at 2³² - 6, so its first 16 lanes straddle 2³².
    {"indices past 2^32", 130, 144, 8, 0.2, {144, (int64_t{1} << 31) - 3, 0}},
};

void expect_bitwise(const std::vector<float>& got, const std::vector<float>& want,
                    const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t differing = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) ++differing;
  }
  EXPECT_EQ(differing, 0u) << what << ": " << differing << " of " << got.size() << " differ";
}

class LoraDown : public ::testing::TestWithParam<Case> {};

TEST_P(LoraDown, FoldedDropoutEqualsDropoutThenProducts) {
  if (gemm_kernel_active() != GemmKernel::Avx512) GTEST_SKIP() << "no AVX-512 thin kernels";
  const Case& c = GetParam();
  ASSERT_TRUE(lora_down_fused_applies(c.tokens, c.in, c.r));
  const int64_t n = c.tokens * c.in;
  const std::vector<float> x = random_values<float>(static_cast<size_t>(n), 1);
  const std::vector<float> a = random_values<float>(static_cast<size_t>(c.r * c.in), 2);
  const std::vector<float> du = random_values<float>(static_cast<size_t>(c.tokens * c.r), 3);
  const std::vector<float> grad_a0 = random_values<float>(a.size(), 4);
  const std::vector<float> dx0 = random_values<float>(x.size(), 5);
  const LoraDropout dropout{c.p, 0x1234abcdull, c.window};
  for (OperandRounding rounding : {OperandRounding::None, OperandRounding::Bf16}) {
    const std::string mode = rounding == OperandRounding::Bf16 ? " (bf16)" : " (fp32)";
    std::vector<float> dropped(x.size());
    dropout_forward(dropped.data(), x.data(), n, c.p, dropout.key, c.window);

    std::vector<float> u(static_cast<size_t>(c.tokens * c.r)), u_want(u.size());
    lora_down_forward(rounding, u.data(), x.data(), a.data(), c.tokens, c.in, c.r, dropout);
    gemm_thin(rounding, Transpose::No, Transpose::Yes, c.tokens, c.r, c.in, 1.0f, dropped.data(),
              c.in, a.data(), c.in, 0.0f, u_want.data(), c.r);
    expect_bitwise(u, u_want, std::string(c.name) + ": u" + mode);

    std::vector<float> grad_a = grad_a0, dx = dx0;
    lora_down_backward(rounding, grad_a.data(), dx.data(), du.data(), x.data(), a.data(), c.tokens,
                       c.in, c.r, dropout);
    std::vector<float> grad_a_want = grad_a0, dx_want = dx0, scratch(x.size());
    gemm_thin(rounding, Transpose::Yes, Transpose::No, c.r, c.in, c.tokens, 1.0f, du.data(), c.r,
              dropped.data(), c.in, 1.0f, grad_a_want.data(), c.in);
    gemm_thin(rounding, Transpose::No, Transpose::No, c.tokens, c.in, c.r, 1.0f, du.data(), c.r,
              a.data(), c.in, 0.0f, scratch.data(), c.in);
    dropout_backward(dx_want.data(), scratch.data(), n, c.p, dropout.key, Accumulate::Yes,
                     c.window);
    expect_bitwise(grad_a, grad_a_want, std::string(c.name) + ": grad_a" + mode);
    expect_bitwise(dx, dx_want, std::string(c.name) + ": dx" + mode);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, LoraDown, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           std::string name = param_info.param.name;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

// The last case does put a 16-lane vector across 2³² (its lanes' high halves differ).
TEST(LoraDown, TheLastCaseHasAVectorAcrossTwoToThe32) {
  const Case& c = kCases[3];
  int64_t straddling = 0;
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int64_t p = 0; p < c.in; p += 16) {
      const uint64_t first =
          static_cast<uint64_t>(t * c.window.full_cols + c.window.col_offset + p);
      if ((first >> 32) != ((first + 15) >> 32)) ++straddling;
    }
  }
  EXPECT_GE(straddling, 1);
}

// The backend's op: the folded kernels for thin shapes, the unfolded path elsewhere (here a
// 20-token batch, below the kernels' sizes), both equal to dropout then gemm.
TEST(LoraDown, BackendOpEqualsDropoutThenGemmForSmallShapes) {
  Backend& be = cpu_backend();
  const int64_t tokens = 20, in = 24, r = 4;
  const std::vector<float> x = random_values<float>(static_cast<size_t>(tokens * in), 6);
  const std::vector<float> a = random_values<float>(static_cast<size_t>(r * in), 7);
  const std::vector<float> du = random_values<float>(static_cast<size_t>(tokens * r), 8);
  const LoraDropout dropout{0.3, 99, {}};
  std::vector<float> dropped(x.size());
  dropout_forward(dropped.data(), x.data(), tokens * in, dropout.p, dropout.key, {});
  std::vector<float> u(static_cast<size_t>(tokens * r)), u_want(u.size());
  be.lora_down_forward(u.data(), x.data(), a.data(), tokens, in, r, dropout);
  be.gemm(Transpose::No, Transpose::Yes, tokens, r, in, 1.0f, dropped.data(), in, a.data(), in,
          0.0f, u_want.data(), r);
  expect_bitwise(u, u_want, "u");
  std::vector<float> grad_a(a.size(), 0.5f), dx(x.size(), -0.25f);
  std::vector<float> grad_a_want = grad_a, dx_want = dx, scratch(x.size());
  be.lora_down_backward(grad_a.data(), dx.data(), du.data(), x.data(), a.data(), tokens, in, r,
                        dropout);
  be.gemm(Transpose::Yes, Transpose::No, r, in, tokens, 1.0f, du.data(), r, dropped.data(), in,
          1.0f, grad_a_want.data(), in);
  be.gemm(Transpose::No, Transpose::No, tokens, in, r, 1.0f, du.data(), r, a.data(), in, 0.0f,
          scratch.data(), in);
  dropout_backward(dx_want.data(), scratch.data(), tokens * in, dropout.p, dropout.key,
                   Accumulate::Yes, {});
  expect_bitwise(grad_a, grad_a_want, "grad_a");
  expect_bitwise(dx, dx_want, "dx");
}

}  // namespace
}  // namespace ll::cpu
