// Tests of cpu/embedding: rows copied (and converted exactly) from f32, bf16 and f16 tables;
// a bad id throws naming it, before anything is written.
#include "backend/cpu/embedding.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "gradcheck.h"

namespace ll::cpu {
namespace {

using test::GuardedBuffer;

constexpr int64_t kVocab = 11;
constexpr int64_t kHidden = 13;

template <typename T>
void check_lookup(WeightView table, const std::vector<float>& table_f32) {
  const std::vector<int32_t> ids = {3, 0, 10, 3, 7};
  const auto tokens = static_cast<int64_t>(ids.size());
  GuardedBuffer<T> out(static_cast<size_t>(tokens * kHidden));
  embedding_forward(out.data(), ids.data(), table, tokens, kVocab, kHidden);
  out.expect_guards_intact("embedding out");
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t c = 0; c < kHidden; ++c) {
      ASSERT_EQ(out[static_cast<size_t>(t * kHidden + c)],
                static_cast<T>(table_f32[ids[t] * kHidden + c]))
          << "token " << t << " channel " << c;
    }
  }
}

TEST(Embedding, CopiesRowsFromEveryDtype) {
  const auto values = test::random_values<float>(kVocab * kHidden, 1);
  std::vector<uint16_t> bf16, f16;
  std::vector<float> from_bf16, from_f16;
  for (float v : values) {
    bf16.push_back(f32_to_bf16(v));
    from_bf16.push_back(bf16_to_f32(bf16.back()));
    f16.push_back(f32_to_f16(v));
    from_f16.push_back(f16_to_f32(f16.back()));
  }
  check_lookup<float>(weight_f32(values.data()), values);
  check_lookup<double>(weight_f32(values.data()), values);
  check_lookup<float>(weight_bf16(bf16.data()), from_bf16);
  check_lookup<double>(weight_bf16(bf16.data()), from_bf16);
  check_lookup<float>(WeightView{f16.data(), DType::F16}, from_f16);
}

TEST(Embedding, BadIdThrowsNamingItAndWritesNothing) {
  const auto table = test::random_values<float>(kVocab * kHidden, 2);
  for (int32_t bad : {static_cast<int32_t>(kVocab), -1, 1 << 30}) {
    const std::vector<int32_t> ids = {1, 2, bad, 4};
    GuardedBuffer<float> out(ids.size() * kHidden, 0.5f);
    try {
      embedding_forward(out.data(), ids.data(), weight_f32(table.data()), 4, kVocab, kHidden);
      ADD_FAILURE() << "no error for id " << bad;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("[embedding]"), std::string::npos) << message;
      EXPECT_NE(message.find("token id " + std::to_string(bad)), std::string::npos) << message;
      EXPECT_NE(message.find("position 2"), std::string::npos) << message;
      EXPECT_NE(message.find("vocabulary of 11"), std::string::npos) << message;
    }
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 0.5f) << "written before the check";
    out.expect_guards_intact("embedding out");
  }
}

TEST(Embedding, NoTokensIsFine) {
  const auto table = test::random_values<float>(kVocab * kHidden, 3);
  GuardedBuffer<float> out(0);
  embedding_forward<float>(out.data(), nullptr, weight_f32(table.data()), 0, kVocab, kHidden);
  out.expect_guards_intact("empty out");
}

}  // namespace
}  // namespace ll::cpu
