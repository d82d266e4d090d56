// Tests of random weight generation: the values are deterministic per (seed, tensor name,
// element) whatever the thread count, have the distribution transformers' _init_weights
// uses, and land in save_pretrained's sharded layout (the streaming sharded writer itself
// is tested in test_safetensors.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/file.h"
#include "formats/model_presets.h"
#include "formats/random_weights.h"
#include "formats/safetensors.h"
#include "test_util.h"

namespace ll {
namespace {

std::vector<uint16_t> normal_values(size_t count, uint64_t seed, const char* name,
                                    unsigned threads) {
  std::vector<uint16_t> out(count);
  fill_normal_bf16(out, 0.02f, seed, name, threads);
  return out;
}

TEST(RandomWeights, SameValuesWhateverTheThreadCount) {
  const size_t count = (size_t{1} << 21) + 12345;  // 3 chunks, the last partial
  const auto one = normal_values(count, 7, "model.layers.0.mlp.up_proj.weight", 1);
  EXPECT_EQ(one, normal_values(count, 7, "model.layers.0.mlp.up_proj.weight", 3));
  EXPECT_NE(one, normal_values(count, 8, "model.layers.0.mlp.up_proj.weight", 1));
  EXPECT_NE(one, normal_values(count, 7, "model.layers.1.mlp.up_proj.weight", 1));
  // Element i depends on (seed, name, i) only, so a shorter tensor is a prefix.
  const auto few = normal_values(5, 7, "model.layers.0.mlp.up_proj.weight", 1);
  EXPECT_TRUE(std::equal(few.begin(), few.end(), one.begin()));
}

TEST(RandomWeights, NormalWithTheRequestedStd) {
  const size_t count = size_t{1} << 21;
  const auto values = normal_values(count, 1, "x", 2);
  double sum = 0;
  double sum_sq = 0;
  size_t within_one = 0;
  size_t within_two = 0;
  double largest = 0;
  for (const uint16_t bits : values) {
    const double z = bf16_to_f32(bits) / 0.02;
    sum += z;
    sum_sq += z * z;
    within_one += std::abs(z) < 1.0;
    within_two += std::abs(z) < 2.0;
    largest = std::max(largest, std::abs(z));
  }
  const double n = static_cast<double>(count);
  const double mean = sum / n;
  const double stddev = std::sqrt(sum_sq / n - mean * mean);
  EXPECT_LT(std::abs(mean), 5.0 / std::sqrt(n));  // 5 standard errors
  EXPECT_NEAR(stddev, 1.0, 0.005);                // bf16 rounding adds ~0.1%
  EXPECT_NEAR(static_cast<double>(within_one) / n, 0.6827, 0.003);
  EXPECT_NEAR(static_cast<double>(within_two) / n, 0.9545, 0.002);
  EXPECT_LT(largest, 6.0);  // 24-bit uniforms cap |z| at 5.77
  EXPECT_GT(largest, 4.5);
}

TEST(RandomWeights, WritesEveryLlamaTensorInitialisedLikeTransformers) {
  const LlamaConfig config = preset_config_for_tokenizer(find_model_preset("tiny"), 300);
  test::TempDir dir;
  RandomWeightsOptions options;
  options.seed = 3;
  options.max_shard_bytes = 100'000;  // forces shards on a ~0.4 MB model
  std::vector<std::string> progress;
  options.on_file_written = [&](const std::string& file, uint64_t done, uint64_t total) {
    progress.push_back(file);
    EXPECT_LE(done, total);
  };
  const WrittenWeights written = write_random_llama_weights(dir.path(), config, options);
  EXPECT_EQ(written.parameters, llama_parameter_count(config));
  EXPECT_EQ(written.tensor_bytes, static_cast<uint64_t>(written.parameters) * 2);
  EXPECT_EQ(written.files, progress);
  ASSERT_GT(written.files.size(), 2u);
  const nlohmann::json index =
      nlohmann::json::parse(read_file(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], written.tensor_bytes);

  const SafetensorsModel model = SafetensorsModel::open(dir.path());
  const auto shapes = llama_tensor_shapes(config);
  ASSERT_EQ(model.tensor_names().size(), shapes.size());
  for (const auto& [name, shape] : shapes) {
    const TensorInfo& info = model.info(name);
    EXPECT_EQ(info.dtype, DType::BF16) << name;
    EXPECT_EQ(info.shape, shape) << name;
    const std::vector<float> values = model.read_f32(name);
    if (name.ends_with("norm.weight")) {
      for (const float v : values) ASSERT_EQ(v, 1.0f) << name;
      continue;
    }
    // The stored values are exactly fill_normal_bf16's for this seed, name and the config's
    // initializer_range (the tiny preset's own, see model_presets.cpp).
    const auto range = config.raw["initializer_range"].get<float>();
    EXPECT_EQ(range, 0.25f);
    std::vector<uint16_t> expected(values.size());
    fill_normal_bf16(expected, range, 3, name, 1);
    for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(values[i], bf16_to_f32(expected[i]));
  }
  for (const auto& file : model.files()) {
    EXPECT_EQ(file->metadata().at("format"), "pt");  // transformers requires it
  }
}

}  // namespace
}  // namespace ll
