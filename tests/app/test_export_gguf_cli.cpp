// `llama-lora export-gguf` on bad input: an unknown --outtype, a config.json without a
// required field, a missing tokenizer.json, a pre-tokenizer llama.cpp has no name for, weights
// that do not match config.json, an existing output, an adapter without its base's config.
// Each exits 1 with exactly one line on stderr naming what is wrong and leaves no file (or
// temporary file) behind. What a good export holds is checked by gguf.reader
// (scripts/interop/check_gguf_export.py, llama.cpp's own reader).
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/file.h"
#include "test_util.h"

namespace ll {
namespace {

using nlohmann::json;
using test::expect_cli_error;
using test::run_llama_lora;
using test::shell_quote;

std::string q(const fs::path& path) {
  return shell_quote(path.string());
}

// The names in `dir` (to see that nothing, not even a temporary file, was left).
std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class ExportGgufCli : public testing::Test {
 protected:
  void SetUp() override {
    model_ = tmp_ / "tiny";
    const auto init = run_llama_lora("init --preset tiny -o " + q(model_));
    ASSERT_EQ(init.exit_code, 0) << init.err;
    fs::create_directories(out_dir_);
  }
  json config() const { return json::parse(read_file(model_ / "config.json")); }
  void write_config(const json& config) const {
    test::write_text(model_ / "config.json", config.dump(2));
  }
  // Runs export-gguf with `args` and checks the error and that out/ stayed empty.
  void expect_refused(const std::string& args, const std::string& part) {
    expect_cli_error(run_llama_lora("export-gguf " + args), part);
    EXPECT_EQ(names_in(out_dir_), std::vector<std::string>{});
  }

  test::TempDir tmp_;
  fs::path model_;
  fs::path out_dir_ = tmp_ / "out";
  fs::path out_ = out_dir_ / "model.gguf";
};

TEST_F(ExportGgufCli, WritesAFileAndRefusesToOverwriteIt) {
  const auto first = run_llama_lora("export-gguf --model " + q(model_) + " -o " + q(out_));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.out.find("21 tensors"), std::string::npos) << first.out;
  const std::string bytes = read_file(out_);
  EXPECT_EQ(bytes.substr(0, 4), "GGUF");
  expect_cli_error(
      run_llama_lora("export-gguf --model " + q(model_) + " -o " + q(out_) + " --outtype f32"),
      "already exists (use --overwrite to replace it)");
  EXPECT_EQ(read_file(out_), bytes);
  const auto again = run_llama_lora("export-gguf --model " + q(model_) + " -o " + q(out_) +
                                    " --outtype f32 --overwrite");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_GT(read_file(out_).size(), bytes.size());  // f32 is twice f16's tensor bytes
  EXPECT_EQ(names_in(out_dir_), std::vector<std::string>{"model.gguf"});
}

TEST_F(ExportGgufCli, RefusesAnUnknownOuttype) {
  expect_refused("--model " + q(model_) + " -o " + q(out_) + " --outtype q4_k",
                 "[export-gguf] --outtype 'q4_k' is not one of f32, f16, bf16, q8_0");
}

TEST_F(ExportGgufCli, RefusesAConfigWithoutARequiredField) {
  json c = config();
  c.erase("hidden_size");
  write_config(c);
  expect_refused("--model " + q(model_) + " -o " + q(out_), "hidden_size");
}

TEST_F(ExportGgufCli, RefusesWeightsThatDoNotMatchTheConfig) {
  json c = config();
  c["intermediate_size"] = 192;
  write_config(c);
  expect_refused("--model " + q(model_) + " -o " + q(out_),
                 "tensor 'model.layers.0.mlp.gate_proj.weight' is BF16 [176, 64] but config.json "
                 "implies a float tensor [192, 64]");
}

TEST_F(ExportGgufCli, RefusesAModelWithoutATokenizer) {
  fs::remove(model_ / "tokenizer.json");
  expect_refused("--model " + q(model_) + " -o " + q(out_), "tokenizer.json: not found");
}

TEST_F(ExportGgufCli, RefusesAPreTokenizerLlamaCppWouldSplitDifferently) {
  json tokenizer = json::parse(read_file(model_ / "tokenizer.json"));
  tokenizer["pre_tokenizer"] = {
      {"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  test::write_text(model_ / "tokenizer.json", tokenizer.dump());
  expect_refused("--model " + q(model_) + " -o " + q(out_),
                 "pre_tokenizer matches no llama.cpp pre-tokenizer we map");
}

TEST_F(ExportGgufCli, RefusesAnAdapterWithoutItsBaseConfig) {
  const fs::path adapter = tmp_ / "adapter";
  fs::create_directories(adapter);
  test::write_text(adapter / "adapter_config.json",
                   R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8,
                       "target_modules": ["q_proj"], "base_model_name_or_path": "nowhere/x"})");
  expect_refused("--adapter " + q(adapter) + " -o " + q(out_), "pass --base_config DIR");
  expect_refused("--adapter " + q(adapter) + " --base_config " + q(tmp_.path()) + " -o " + q(out_),
                 "no config.json there");
  expect_refused("--model " + q(model_) + " --adapter " + q(adapter) + " --base_config " +
                     q(model_) + " -o " + q(out_),
                 "--base_config is for --adapter alone");
}

}  // namespace
}  // namespace ll
