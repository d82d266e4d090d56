// merge and export-gguf of the Qwen2 and Mistral fixtures (tests/fixtures/arch, written by
// scripts/fixtures/make_arch_fixtures.py with transformers 5.25.0 / peft 0.21.2).
//
// Merge: the merged folder keeps config.json (architecture, Qwen2's sliding-window fields) and
// Qwen2's q/k/v biases byte for byte under their HF names, and our forward of it equals
// transformers' forward of peft's merge_and_unload within 1e-5 of the largest logit (the golden
// fp32 bound: both compute W + scale·B·A in fp32 and differ in rounding order only).
// export-gguf: Qwen2 is refused with one line (planned); a Mistral adapter exports as llama.cpp's
// "llama" architecture, as its converter treats MistralForCausalLM.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "core/error.h"
#include "core/file.h"
#include "fixture_batch.h"
#include "formats/safetensors.h"
#include "model/llama_model.h"
#include "safetensors_test_util.h"
#include "test_util.h"
#include "tools/gguf_export.h"
#include "tools/merge.h"

namespace ll {
namespace {

fs::path arch(const std::string& name) {
  return test::fixtures() / "arch" / name;
}

TEST(MergeArchitectures, MergedModelKeepsArchitectureAndBiasesAndEqualsPeft) {
  for (const char* name : {"qwen2", "mistral"}) {
    SCOPED_TRACE(name);
    test::TempDir tmp;
    const fs::path base = arch(name) / "model";
    const MergeResult result =
        merge_adapter(base, arch(name) / "adapter", tmp / "merged", MergeOptions{});
    EXPECT_EQ(result.merged_tensors, 14u);  // 2 layers x 7 projections
    EXPECT_EQ(read_file(tmp / "merged" / "config.json"), read_file(base / "config.json"));

    const SafetensorsModel ours = SafetensorsModel::open(tmp / "merged");
    const SafetensorsModel theirs = SafetensorsModel::open(base);
    EXPECT_EQ(ours.tensor_names(), theirs.tensor_names());
    int biases = 0;
    for (const std::string& tensor : theirs.tensor_names()) {
      if (!tensor.ends_with(".bias")) continue;
      const auto a = ours.data(tensor);
      const auto b = theirs.data(tensor);
      ASSERT_EQ(a.size(), b.size());
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size()), 0) << tensor;
      ++biases;
    }
    EXPECT_EQ(biases, std::string(name) == "qwen2" ? 6 : 0);
    if (biases > 0) {
      EXPECT_TRUE(ours.contains("model.layers.1.self_attn.v_proj.bias"));
    }

    const LlamaWeights merged = load_llama_weights(tmp / "merged");
    EXPECT_EQ(merged.config.architecture,
              std::string(name) == "qwen2" ? Architecture::Qwen2 : Architecture::Mistral);
    const SafetensorsModel expected = SafetensorsModel::open(arch(name), "expected.safetensors");
    LlamaLoraModel model(merged, nullptr, ModelOptions{});
    const double error = test::max_relative_error(
        model.forward_logits(test::fixture_batch(expected)), expected.read_f32("merged_logits"));
    EXPECT_LE(error, 1e-5);
    std::printf("  %s: merged vs peft merge_and_unload logits rel err %.2e\n", name, error);
  }
}

TEST(MergeArchitectures, GgufExportRefusesQwen2AndWritesMistralAsLlama) {
  test::TempDir tmp;
  const std::string model_error = test::error_of(
      [&] { export_model_gguf(arch("qwen2") / "model", tmp / "q.gguf", GgufExportOptions{}); });
  EXPECT_NE(model_error.find("Qwen2ForCausalLM cannot be exported to GGUF yet"), std::string::npos)
      << model_error;
  EXPECT_EQ(model_error.find('\n'), std::string::npos);
  const std::string adapter_error = test::error_of([&] {
    export_adapter_gguf(arch("qwen2") / "adapter", arch("qwen2") / "model", tmp / "a.gguf",
                        GgufExportOptions{});
  });
  EXPECT_NE(adapter_error.find("Qwen2ForCausalLM cannot be exported"), std::string::npos);
  const std::string merged_error = test::error_of([&] {
    export_merged_gguf(arch("qwen2") / "model", arch("qwen2") / "adapter", tmp / "m.gguf",
                       GgufExportOptions{});
  });
  EXPECT_NE(merged_error.find("Qwen2ForCausalLM cannot be exported"), std::string::npos);
  EXPECT_FALSE(fs::exists(tmp / "q.gguf") || fs::exists(tmp / "a.gguf") ||
               fs::exists(tmp / "m.gguf"));

  const GgufExportResult mistral =
      export_adapter_gguf(arch("mistral") / "adapter", arch("mistral") / "model",
                          tmp / "mistral.gguf", GgufExportOptions{});
  EXPECT_EQ(mistral.tensors, 2u * 7u * 2u);
  // GGUF key-value: the key, a uint32 type (8: string), a uint64 length, the string.
  const std::string bytes = read_file(tmp / "mistral.gguf");
  const std::string key = "general.architecture";
  const size_t at = bytes.find(key);
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(bytes.substr(at + key.size() + 4 + 8, 5), "llama");
}

}  // namespace
}  // namespace ll
