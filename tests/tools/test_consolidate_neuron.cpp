// consolidate of Optimum Neuron checkpoints (model/adapter_shards_neuron.cpp): the tp 2 and
// tp 8 checkpoints of tests/fixtures/neuron (scripts/fixtures/make_neuron_fixtures.py, torch
// 2.15.0 + peft 0.21.2, laid out as optimum-neuron writes them) consolidate to exactly the
// known adapter peft saved, and merged into the base they equal peft's merge_and_unload; replicas
// that disagree, a rank's slice of the wrong shape and a missing rank are one line of error and
// leave no output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "formats/safetensors.h"
#include "safetensors_test_util.h"
#include "test_util.h"
#include "tools/consolidate.h"
#include "tools/merge.h"

namespace ll {
namespace {

fs::path neuron(const std::string& name) {
  return test::fixtures() / "neuron" / name;
}

#define EXPECT_CONTAINS(text, part)                          \
  EXPECT_NE(std::string(text).find(part), std::string::npos) \
      << "expected to find: " << (part) << "\n                in: " << (text)

class ConsolidateNeuron : public ::testing::TestWithParam<int64_t> {};

TEST_P(ConsolidateNeuron, ShardsJoinToTheKnownAdapterBitForBit) {
  const int64_t tp = GetParam();
  test::TempDir tmp;
  const fs::path out = tmp / "adapter";
  const ConsolidateResult result = consolidate_checkpoint(
      neuron("tp" + std::to_string(tp)) / "checkpoint-250", out, StagedDir::Existing::Refuse);
  EXPECT_EQ(result.tp_size, tp);
  EXPECT_EQ(result.layers, 1);
  EXPECT_EQ(result.tensors, 14u);  // A and B of the seven projections
  test::expect_same_tensors_by_name(
      SafetensorsFile::open(out / "adapter_model.safetensors"),
      SafetensorsFile::open(neuron("adapter") / "adapter_model.safetensors"));
  EXPECT_EQ(read_file(out / "adapter_config.json"),
            read_file(neuron("adapter") / "adapter_config.json"));
}

// Consolidated, then merged: the merged model equals peft's merge_and_unload of the known
// adapter (tests/fixtures/neuron/merged) within 1e-6 of each tensor's largest value: both
// compute W + scale·B·A in fp32 and may differ only in the order of the r = 8 products
// (~1e-7 relative), as in test_merge's comparison with peft.
TEST_P(ConsolidateNeuron, MergedEqualsPeftMergeAndUnload) {
  test::TempDir tmp;
  consolidate_checkpoint(neuron("tp" + std::to_string(GetParam())) / "checkpoint-250",
                         tmp / "adapter", StagedDir::Existing::Refuse);
  merge_adapter(neuron("base"), tmp / "adapter", tmp / "merged", MergeOptions{});
  const SafetensorsModel ours = SafetensorsModel::open(tmp / "merged");
  const SafetensorsModel peft = SafetensorsModel::open(neuron("merged"));
  ASSERT_EQ(ours.tensor_names(), peft.tensor_names());
  size_t changed = 0;
  for (const std::string& name : ours.tensor_names()) {
    const std::vector<float> a = ours.read_f32(name);
    const std::vector<float> b = peft.read_f32(name);
    const std::vector<float> w = SafetensorsModel::open(neuron("base")).read_f32(name);
    ASSERT_EQ(a.size(), b.size()) << name;
    float largest = 0;
    for (float v : b) largest = std::max(largest, std::fabs(v));
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_LE(std::fabs(a[i] - b[i]), 1e-6f * largest) << name << "[" << i << "]";
    }
    changed += a != w;
  }
  EXPECT_EQ(changed, 7u);  // the seven adapted projections moved, nothing else

  // merge --adapter CHECKPOINT consolidates first: the same file, and no staging folder left.
  merge_adapter(neuron("base"), neuron("tp" + std::to_string(GetParam())) / "checkpoint-250",
                tmp / "direct", MergeOptions{});
  EXPECT_EQ(read_file(tmp / "direct" / "model.safetensors"),
            read_file(tmp / "merged" / "model.safetensors"));
  size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(tmp.path())) ++entries;
  EXPECT_EQ(entries, 3u);  // adapter, merged, direct
}

INSTANTIATE_TEST_SUITE_P(TensorParallel, ConsolidateNeuron, ::testing::Values(2, 8));

std::string consolidate_error(const fs::path& checkpoint) {
  test::TempDir tmp;
  const std::string message = test::error_of(
      [&] { consolidate_checkpoint(checkpoint, tmp / "adapter", StagedDir::Existing::Refuse); });
  EXPECT_TRUE(fs::is_empty(tmp.path())) << "output left behind";
  return message;
}

constexpr const char* kQA = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
constexpr const char* kQB = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";

TEST(ConsolidateNeuronBadInput, ReplicasThatDisagree) {
  const std::string message = consolidate_error(neuron("tp2_bad_replica") / "checkpoint-250");
  EXPECT_CONTAINS(message, kQA);
  EXPECT_CONTAINS(message, "ranks 0 and 1 hold different values (first at element 0)");
}

TEST(ConsolidateNeuronBadInput, ASliceOfTheWrongShape) {
  const std::string message = consolidate_error(neuron("tp2_bad_shape") / "checkpoint-250");
  EXPECT_CONTAINS(message, "dp_rank_00_tp_rank_01_pp_rank_00.pt: tensor '" + std::string(kQB) +
                               "' is F32 [7, 8] but rank 0 holds F32 [8, 8]");
}

TEST(ConsolidateNeuronBadInput, AMissingRank) {
  test::TempDir tmp;
  const fs::path checkpoint = tmp / "checkpoint-250";
  fs::copy(neuron("tp8") / "checkpoint-250", checkpoint, fs::copy_options::recursive);
  fs::remove(checkpoint / "adapter_shards" / "model" / "dp_rank_00_tp_rank_03_pp_rank_00.pt");
  const std::string message = consolidate_error(checkpoint);
  EXPECT_CONTAINS(message,
                  "dp_rank_00_tp_rank_03_pp_rank_00.pt is missing (found 7 of the ranks 0..7)");
}

TEST(ConsolidateNeuronBadInput, MissingMetadataAndPipelineRanks) {
  test::TempDir tmp;
  const fs::path checkpoint = tmp / "checkpoint-250";
  fs::copy(neuron("tp2") / "checkpoint-250", checkpoint, fs::copy_options::recursive);
  const fs::path shards = checkpoint / "adapter_shards";
  fs::copy_file(shards / "model" / "dp_rank_00_tp_rank_01_pp_rank_00.pt",
                shards / "model" / "dp_rank_00_tp_rank_01_pp_rank_01.pt");
  EXPECT_CONTAINS(consolidate_error(checkpoint), "pipeline-parallel checkpoints are not read yet");
  fs::remove(shards / "model" / "dp_rank_00_tp_rank_01_pp_rank_01.pt");
  fs::remove(shards / "mp_metadata_pp_rank_0.pt");
  EXPECT_CONTAINS(consolidate_error(checkpoint),
                  "mp_metadata_pp_rank_0.pt: missing (it says which tensors are sharded)");
}

}  // namespace
}  // namespace ll
