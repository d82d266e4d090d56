// End-to-end tests of `llama-lora inspect`: a tiny model folder the test writes (config +
// safetensors) reports the parameter count worked out by hand, `--json` is parseable,
// tensors that disagree with the config are warned about, and a corrupt folder fails
// with exit code 1 and exactly one line on stderr.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "formats/llama_config.h"
#include "formats/safetensors.h"
#include "test_util.h"

namespace ll {
namespace {

using nlohmann::json;

#define EXPECT_CONTAINS(text, part)                          \
  EXPECT_NE(std::string(text).find(part), std::string::npos) \
      << "expected to find: " << (part) << "\n                in: " << (text)

// vocab 32, hidden 16, intermediate 32, 2 layers, 4 heads of 4, 2 kv heads, untied:
//   embed 32*16 = 512, lm_head 512, final norm 16,
//   per layer q 16*16 + k 8*16 + v 8*16 + o 16*16 + 3 * 32*16 (mlp) + 2*16 (norms) = 2,336,
//   total 512 + 512 + 16 + 2 * 2,336 = 5,712.
constexpr int64_t kTinyParameters = 5712;

json tiny_config() {
  return json{{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"vocab_size", 32},
              {"hidden_size", 16},
              {"intermediate_size", 32},
              {"num_hidden_layers", 2},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 2},
              {"rope_theta", 500000.0},
              {"rope_scaling",
               {{"rope_type", "llama3"},
                {"factor", 8.0},
                {"low_freq_factor", 1.0},
                {"high_freq_factor", 4.0},
                {"original_max_position_embeddings", 64}}},
              {"torch_dtype", "bfloat16"}};
}

// Writes config.json and bf16 zero weights for every tensor the config implies, except
// `skip`, plus `extra` (a name) when given.
void write_tiny_model(const fs::path& dir, const std::string& skip = "",
                      const std::string& extra = "", uint64_t max_shard_bytes = 1 << 20) {
  test::write_text(dir / "config.json", tiny_config().dump(2));
  const LlamaConfig config = parse_llama_config(tiny_config(), "test");
  auto shapes = llama_tensor_shapes(config);
  if (!extra.empty()) shapes.push_back({extra, {3}});
  std::vector<std::vector<uint16_t>> storage;
  std::vector<TensorToWrite> tensors;
  storage.reserve(shapes.size());
  for (const auto& [name, shape] : shapes) {
    if (name == skip) continue;
    int64_t numel = 1;
    for (const int64_t dim : shape) numel *= dim;
    storage.emplace_back(static_cast<size_t>(numel), uint16_t{0});
    tensors.push_back({name, DType::BF16, shape, std::as_bytes(std::span(storage.back()))});
  }
  write_sharded_safetensors(dir, tensors, max_shard_bytes);
}

TEST(Inspect, PrintsConfigParameterCountAndTensors) {
  test::TempDir dir;
  write_tiny_model(dir.path());
  const test::CommandResult result =
      test::run_llama_lora("inspect " + test::shell_quote(dir.path().string()));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_CONTAINS(result.out, "LlamaForCausalLM");
  EXPECT_CONTAINS(result.out, "parameters     5,712 (config implies 5,712)");
  EXPECT_CONTAINS(result.out, "4 (kv heads 2, head_dim 4)");
  EXPECT_CONTAINS(result.out, "llama3 scaling (factor 8");
  EXPECT_CONTAINS(result.out, "11,424 bytes");  // 5,712 bf16 values
  EXPECT_CONTAINS(result.out, "model.layers.1.self_attn.k_proj.weight");
  EXPECT_CONTAINS(result.out, "[8, 16]");
  EXPECT_EQ(result.out.find("warnings"), std::string::npos) << result.out;

  const test::CommandResult quiet =
      test::run_llama_lora("inspect --no-tensors " + test::shell_quote(dir.path().string()));
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_CONTAINS(quiet.out, "5,712");
  EXPECT_EQ(quiet.out.find("k_proj"), std::string::npos) << quiet.out;
}

TEST(Inspect, JsonOutputOnShardedModel) {
  test::TempDir dir;
  write_tiny_model(dir.path(), "", "", 4096);  // several shards plus an index
  const test::CommandResult result =
      test::run_llama_lora("inspect --json " + test::shell_quote(dir.path().string()));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json out = json::parse(result.out);
  EXPECT_EQ(out["parameters"], kTinyParameters);
  EXPECT_EQ(out["expected_parameters"], kTinyParameters);
  EXPECT_EQ(out["total_bytes"], 2 * kTinyParameters);
  EXPECT_GT(out["files"].size(), 1u);
  EXPECT_EQ(out["config"]["head_dim"], 4);
  EXPECT_EQ(out["config"]["rope_scaling"]["rope_type"], "llama3");
  EXPECT_TRUE(out["warnings"].empty());
  EXPECT_EQ(out["tensors"].size(), 3 + 2 * 9u);
}

TEST(Inspect, WarnsAboutTensorsThatDisagreeWithTheConfig) {
  test::TempDir dir;
  write_tiny_model(dir.path(), "lm_head.weight", "model.extra.weight");
  const test::CommandResult result =
      test::run_llama_lora("inspect --no-tensors " + test::shell_quote(dir.path().string()));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_CONTAINS(result.out, "warnings (2)");
  EXPECT_CONTAINS(result.out, "missing tensor 'lm_head.weight' [32, 16]");
  EXPECT_CONTAINS(result.out, "unexpected tensor 'model.extra.weight' [3]");
  EXPECT_CONTAINS(result.out, "parameters     5,203 (config implies 5,712)");  // 5,712-512+3
}

TEST(Inspect, CorruptFolderFailsWithOneLine) {
  test::TempDir dir;
  write_tiny_model(dir.path());
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") - 100);
  const test::CommandResult result =
      test::run_llama_lora("inspect " + test::shell_quote(dir.path().string()));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_TRUE(result.out.empty()) << result.out;
  EXPECT_CONTAINS(result.err, "[safetensors] " + (dir / "model.safetensors").string());
  EXPECT_CONTAINS(result.err, "but the data section has");
  ASSERT_FALSE(result.err.empty());
  EXPECT_EQ(result.err.find('\n'), result.err.size() - 1) << "one line: " << result.err;

  test::write_text(dir / "config.json", R"({"architectures": ["Phi3ForCausalLM"]})");
  const test::CommandResult phi3 =
      test::run_llama_lora("inspect " + test::shell_quote(dir.path().string()));
  EXPECT_NE(phi3.exit_code, 0);
  EXPECT_CONTAINS(phi3.err, "field 'architectures': 'Phi3ForCausalLM' is not supported");
  EXPECT_CONTAINS(phi3.err, "MistralForCausalLM (model_type 'mistral')");
  EXPECT_EQ(phi3.err.find('\n'), phi3.err.size() - 1) << phi3.err;
}

}  // namespace
}  // namespace ll
