// `merge` of an adapter with rank_pattern, alpha_pattern and layers_to_transform against peft
// 0.21.2's merge_and_unload (tests/fixtures/peft_patterns/, scripts/fixtures/
// make_peft_pattern_fixtures.py): every merged projection, the untouched ones, and the merged
// model's logits.
//
// Tolerances (fp32): a merged weight max |ours - peft| / max |peft| <= 1e-6 (both add
// scale·B·A in fp32 and round once; only the order of the r-term sums differs, a few ulp); the
// merged model's logits <= 1e-5 relative, as the forward tests (test_peft_patterns.cpp). A module
// merged with another module's scale or rank moves its weight by about 1e-2 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "formats/safetensors.h"
#include "model/llama_model.h"
#include "model/peft_match.h"
#include "peft_patterns_fixture.h"
#include "tools/merge.h"

namespace ll {
namespace {

fs::path fixture() {
  return test::peft_patterns_dir();
}

class MergePatterns : public ::testing::TestWithParam<std::string> {};

TEST_P(MergePatterns, MergeEqualsPeftsMergeAndUnload) {
  const std::string adapter = GetParam();
  test::TempDir out;
  const MergeResult result =
      merge_adapter(fixture() / "model", fixture() / adapter, out / "merged", MergeOptions{});
  const SafetensorsModel expected = SafetensorsModel::open(fixture(), "expected.safetensors");
  const SafetensorsModel merged = SafetensorsModel::open(out / "merged");
  const SafetensorsModel base = SafetensorsModel::open(fixture() / "model");
  const nlohmann::json meta = nlohmann::json::parse(read_file(fixture() / "meta.json"));
  const nlohmann::json& modules = meta["adapters"][adapter]["modules"];
  EXPECT_EQ(result.merged_tensors, modules.size());
  for (int64_t layer = 0; layer < 3; ++layer) {
    for (LoraTarget target : kAllLoraTargets) {
      const std::string module = peft_module_name(layer, target);
      const std::string name = module + ".weight";
      if (modules.contains(module)) {
        EXPECT_LE(test::max_relative_error(merged.read_f32(name),
                                           expected.read_f32(adapter + ".merged." + name)),
                  1e-6)
            << name;
      } else {  // layer 1 (not in layers_to_transform) and the projections not targeted
        EXPECT_EQ(merged.read_f32(name), base.read_f32(name)) << name;
      }
    }
  }

  const LlamaWeights weights = load_llama_weights(out / "merged");
  LlamaLoraModel model(weights, nullptr, ModelOptions{Checkpointing::Off, 5});
  const TokenBatch batch = test::peft_patterns_batch(expected);
  EXPECT_LE(test::max_relative_error(model.forward_logits(batch),
                                     expected.read_f32(adapter + ".merged_logits")),
            1e-5);
}

INSTANTIATE_TEST_SUITE_P(Fixture, MergePatterns, ::testing::Values("adapter", "adapter_rslora"));

}  // namespace
}  // namespace ll
