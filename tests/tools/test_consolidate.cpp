// consolidate (tools/consolidate.h) and the tensor-parallel shard files it reads
// (model/adapter_shards.h): synthetic 2- and 4-way shards of a random adapter consolidate to
// exactly the tensors (and the file) that save_peft_adapter writes for the unsharded adapter;
// each shard holds the slices and metadata of the documented layout; and every bad checkpoint
// (missing shard, replicas that disagree, a stated split that is not the layout's, a broken
// adapter_config.json, an existing output folder) is one line of error and leaves no output.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "formats/llama_config.h"
#include "formats/safetensors.h"
#include "model/adapter_shards.h"
#include "model/peft_adapter.h"
#include "test_util.h"
#include "tools/consolidate.h"

namespace ll {
namespace {

// The golden llama3_rope_headdim shape: q_out 64, kv_out 16, hidden 48, intermediate 96, so
// every split dimension divides by 2 and 4 (and q_out 64 does not divide by 3).
LlamaConfig model_config() {
  return load_llama_config(test::fixtures() / "golden" / "llama3_rope_headdim" / "model");
}

// A random adapter over all seven projections; B non-zero so that B's slices matter.
LoraAdapter random_adapter(uint64_t seed) {
  LoraConfig lora;
  lora.r = 4;
  lora.alpha = 8;
  lora.targets.fill(true);
  LoraAdapter adapter = lora_init(model_config(), lora, seed);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> normal(0.0f, 0.1f);
  for (auto& layer : adapter.layers()) {
    for (auto& matrix : layer) {
      if (matrix) {
        for (float& value : matrix->b) value = normal(rng);
      }
    }
  }
  return adapter;
}

// A checkpoint folder with adapter_config.json and `size` shards of `adapter`.
void write_sharded_checkpoint(const fs::path& dir, const LoraAdapter& adapter, int64_t size) {
  test::TempDir scratch;
  save_peft_adapter(scratch.path(), adapter, "");
  fs::create_directories(dir);
  fs::copy_file(scratch / "adapter_config.json", dir / "adapter_config.json");
  for (int64_t rank = 0; rank < size; ++rank) save_adapter_tp_shard(dir, adapter, rank, size);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Every tensor of two safetensors files: same names, order, dtypes, shapes and bits.
void expect_same_tensors(const fs::path& ours, const fs::path& reference) {
  const SafetensorsFile a = SafetensorsFile::open(ours);
  const SafetensorsFile b = SafetensorsFile::open(reference);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    const TensorInfo& x = a.tensors()[i];
    const TensorInfo& y = b.tensors()[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.dtype, y.dtype) << x.name;
    EXPECT_EQ(x.shape, y.shape) << x.name;
    const auto dx = a.data(x);
    const auto dy = b.data(y);
    ASSERT_EQ(dx.size(), dy.size()) << x.name;
    EXPECT_EQ(std::memcmp(dx.data(), dy.data(), dx.size()), 0) << x.name << " differs";
  }
}

class ConsolidateTp : public ::testing::TestWithParam<int64_t> {};

TEST_P(ConsolidateTp, ShardsJoinToTheUnshardedAdapterBitForBit) {
  const int64_t size = GetParam();
  test::TempDir tmp;
  const LoraAdapter adapter = random_adapter(7);
  fs::create_directories(tmp / "reference");
  save_peft_adapter(tmp / "reference", adapter, "");
  write_sharded_checkpoint(tmp / "checkpoint-10", adapter, size);

  const ConsolidateResult result =
      consolidate_checkpoint(tmp / "checkpoint-10", tmp / "adapter", StagedDir::Existing::Refuse);
  EXPECT_EQ(result.tp_size, size);
  EXPECT_EQ(result.layers, 2);
  EXPECT_EQ(result.tensors, 28u);  // 2 layers x 7 projections x (A, B)
  expect_same_tensors(tmp / "adapter" / "adapter_model.safetensors",
                      tmp / "reference" / "adapter_model.safetensors");
  // Same tensors in the same order with the same metadata: the very same file.
  EXPECT_EQ(read_file(tmp / "adapter" / "adapter_model.safetensors"),
            read_file(tmp / "reference" / "adapter_model.safetensors"));
  EXPECT_EQ(read_file(tmp / "adapter" / "adapter_config.json"),
            read_file(tmp / "reference" / "adapter_config.json"));
  // And our peft loader takes it for this model.
  const LoraAdapter loaded = load_peft_adapter(tmp / "adapter", model_config());
  EXPECT_EQ(test::values_of(loaded.layers()[1][static_cast<size_t>(LoraTarget::Down)]->a),
            test::values_of(adapter.layers()[1][static_cast<size_t>(LoraTarget::Down)]->a));
}

INSTANTIATE_TEST_SUITE_P(TwoAndFourWay, ConsolidateTp, ::testing::Values(int64_t{2}, int64_t{4}));

TEST(AdapterShards, EachShardHoldsItsSliceAndSaysHowItIsSplit) {
  test::TempDir tmp;
  const LoraAdapter adapter = random_adapter(3);
  save_adapter_tp_shard(tmp.path(), adapter, 1, 4);
  const SafetensorsFile shard = SafetensorsFile::open(tmp / "adapter-tp1-of-4.safetensors");
  EXPECT_EQ(shard.metadata().at("tp_rank"), "1");
  EXPECT_EQ(shard.metadata().at("tp_size"), "4");
  EXPECT_EQ(shard.metadata().at("format"), "pt");

  const LoraMatrix& q = *adapter.layers()[0][static_cast<size_t>(LoraTarget::Q)];
  const LoraMatrix& o = *adapter.layers()[0][static_cast<size_t>(LoraTarget::O)];
  const auto read = [&](const std::string& name) {
    const TensorInfo& info = *shard.find(name);
    std::vector<float> values(static_cast<size_t>(info.numel()));
    std::memcpy(values.data(), shard.data(info).data(), info.nbytes);
    return std::pair{info.shape, values};
  };
  // q_proj (column-parallel): A replicated, B rows 16..31 of 64.
  const std::string q_a = lora_tensor_name(0, LoraTarget::Q, LoraPart::A);
  const std::string q_b = lora_tensor_name(0, LoraTarget::Q, LoraPart::B);
  EXPECT_EQ(shard.metadata().at("tp_split." + q_a), "none");
  EXPECT_EQ(shard.metadata().at("tp_split." + q_b), "0");
  EXPECT_EQ(read(q_a).second, test::values_of(q.a));
  const auto [q_b_shape, q_b_values] = read(q_b);
  EXPECT_EQ(q_b_shape, (std::vector<int64_t>{16, 4}));
  EXPECT_EQ(q_b_values, std::vector<float>(q.b.begin() + 16 * 4, q.b.begin() + 32 * 4));
  // o_proj (row-parallel): A columns 16..31 of 64 in every row, B replicated.
  const std::string o_a = lora_tensor_name(0, LoraTarget::O, LoraPart::A);
  const std::string o_b = lora_tensor_name(0, LoraTarget::O, LoraPart::B);
  EXPECT_EQ(shard.metadata().at("tp_split." + o_a), "1");
  EXPECT_EQ(shard.metadata().at("tp_split." + o_b), "none");
  const auto [o_a_shape, o_a_values] = read(o_a);
  EXPECT_EQ(o_a_shape, (std::vector<int64_t>{4, 16}));
  for (int64_t row = 0; row < 4; ++row) {
    for (int64_t col = 0; col < 16; ++col) {
      EXPECT_EQ(o_a_values[static_cast<size_t>(row * 16 + col)],
                o.a[static_cast<size_t>(row * 64 + 16 + col)]);
    }
  }
  EXPECT_EQ(read(o_b).second, test::values_of(o.b));
}

TEST(AdapterShards, SplitThatDoesNotDivideIsRefusedBeforeWriting) {
  test::TempDir tmp;
  const std::string message =
      test::error_of([&] { save_adapter_tp_shard(tmp.path(), random_adapter(1), 0, 3); });
  // q_proj's B has 64 rows: the first split that 3 does not divide.
  EXPECT_TRUE(contains(message, lora_tensor_name(0, LoraTarget::Q, LoraPart::B))) << message;
  EXPECT_TRUE(contains(message, "does not divide by tensor_parallel_size 3")) << message;
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(AdapterShards, ShardNamesParse) {
  EXPECT_EQ(adapter_tp_shard_name(2, 8), "adapter-tp2-of-8.safetensors");
  EXPECT_EQ(parse_adapter_tp_shard_name("adapter-tp2-of-8.safetensors"),
            (std::pair<int64_t, int64_t>{2, 8}));
  EXPECT_FALSE(parse_adapter_tp_shard_name("adapter-tp2-of-8.safetensors.tmp-1-0"));
  EXPECT_FALSE(parse_adapter_tp_shard_name("adapter-tp-of-8.safetensors"));
  EXPECT_FALSE(parse_adapter_tp_shard_name("adapter-tp-1-of-8.safetensors"));
  const auto parsed = parse_lora_tensor_name(lora_tensor_name(12, LoraTarget::Down, LoraPart::B));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->layer, 12);
  EXPECT_EQ(parsed->target, LoraTarget::Down);
  EXPECT_EQ(parsed->part, LoraPart::B);
  EXPECT_FALSE(parse_lora_tensor_name("base_model.model.model.layers.0.mlp.q_proj.lora_A.weight"));
}

TEST(Consolidate, TensorParallelSizeOneIsCheckedAndCopied) {
  test::TempDir tmp;
  fs::create_directories(tmp / "checkpoint-5");
  save_peft_adapter(tmp / "checkpoint-5", random_adapter(5), "");
  const ConsolidateResult result =
      consolidate_checkpoint(tmp / "checkpoint-5", tmp / "adapter", StagedDir::Existing::Refuse);
  EXPECT_EQ(result.tp_size, 1);
  EXPECT_EQ(result.tensors, 28u);
  for (const char* name : {"adapter_config.json", "adapter_model.safetensors"}) {
    EXPECT_EQ(read_file(tmp / "adapter" / name), read_file(tmp / "checkpoint-5" / name)) << name;
  }
}

// Bad checkpoints: the error names what is wrong, and the output's parent folder stays empty
// (no output folder, no staging leftovers).
class ConsolidateBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    write_sharded_checkpoint(checkpoint(), random_adapter(11), 4);
    fs::create_directories(tmp / "out");
  }
  fs::path checkpoint() const { return tmp / "checkpoint-20"; }
  std::string consolidate_error() {
    const std::string message = test::error_of([&] {
      consolidate_checkpoint(checkpoint(), tmp / "out" / "adapter", StagedDir::Existing::Refuse);
    });
    EXPECT_TRUE(fs::is_empty(tmp / "out")) << "output left behind";
    return message;
  }
  test::TempDir tmp;
};

TEST_F(ConsolidateBadInput, MissingShard) {
  fs::remove(checkpoint() / "adapter-tp2-of-4.safetensors");
  const std::string message = consolidate_error();
  EXPECT_TRUE(contains(message, "adapter-tp2-of-4.safetensors is missing")) << message;
}

TEST_F(ConsolidateBadInput, ReplicatedTensorsDisagree) {
  // Rank 3 saved from an adapter whose layer-1 q_proj A (replicated) differs in one value.
  LoraAdapter other = random_adapter(11);
  other.layers()[1][static_cast<size_t>(LoraTarget::Q)]->a[5] += 1e-3f;
  save_adapter_tp_shard(checkpoint(), other, 3, 4);
  const std::string message = consolidate_error();
  EXPECT_TRUE(contains(message, lora_tensor_name(1, LoraTarget::Q, LoraPart::A))) << message;
  EXPECT_TRUE(contains(message, "ranks 0 and 3")) << message;
  EXPECT_TRUE(contains(message, "element 5")) << message;
}

TEST_F(ConsolidateBadInput, StatedSplitIsNotTheLayout) {
  // Rewrite rank 1 with metadata claiming that q_proj's B is replicated.
  const fs::path path = checkpoint() / "adapter-tp1-of-4.safetensors";
  const SafetensorsFile shard = SafetensorsFile::open(path);
  Metadata metadata = shard.metadata();
  metadata["tp_split." + lora_tensor_name(0, LoraTarget::Q, LoraPart::B)] = "none";
  std::vector<TensorToWrite> tensors;
  for (const TensorInfo& info : shard.tensors()) {
    tensors.push_back({info.name, info.dtype, info.shape, shard.data(info)});
  }
  write_safetensors(checkpoint() / "rewritten.safetensors", tensors, metadata);
  fs::rename(checkpoint() / "rewritten.safetensors", path);
  const std::string message = consolidate_error();
  EXPECT_TRUE(contains(message, "metadata says split \"none\"")) << message;
}

TEST_F(ConsolidateBadInput, BrokenAdapterConfig) {
  test::write_text(checkpoint() / "adapter_config.json", "{\"peft_type\": \"LORA\", \"r\": ");
  const std::string message = consolidate_error();
  EXPECT_TRUE(contains(message, "adapter_config.json: not valid JSON")) << message;
}

TEST_F(ConsolidateBadInput, ConfigWhoseRIsNotTheTensors) {
  std::string config = read_file(checkpoint() / "adapter_config.json");
  config.replace(config.find("\"r\": 4"), 6, "\"r\": 8");
  test::write_text(checkpoint() / "adapter_config.json", config);
  const std::string message = consolidate_error();
  EXPECT_TRUE(contains(message, "but r is 8")) << message;
}

TEST_F(ConsolidateBadInput, BothSingleFileAndShards) {
  save_peft_adapter(checkpoint(), random_adapter(11), "");
  const std::string message = consolidate_error();
  EXPECT_TRUE(contains(message, "holds more than one of adapter_model.safetensors, our shards"))
      << message;
}

TEST(ConsolidateOutput, ExistingFolderRefusedOrReplacedOnlyOnSuccess) {
  test::TempDir tmp;
  write_sharded_checkpoint(tmp / "checkpoint-1", random_adapter(2), 2);
  test::write_text(tmp / "adapter" / "old.txt", "earlier output");

  const std::string refused = test::error_of([&] {
    consolidate_checkpoint(tmp / "checkpoint-1", tmp / "adapter", StagedDir::Existing::Refuse);
  });
  EXPECT_TRUE(contains(refused, "already exists (use --overwrite")) << refused;
  EXPECT_EQ(read_file(tmp / "adapter" / "old.txt"), "earlier output");

  // --overwrite with a checkpoint that fails: the old folder stays as it was.
  fs::remove(tmp / "checkpoint-1" / "adapter-tp1-of-2.safetensors");
  test::error_of([&] {
    consolidate_checkpoint(tmp / "checkpoint-1", tmp / "adapter", StagedDir::Existing::Replace);
  });
  EXPECT_EQ(read_file(tmp / "adapter" / "old.txt"), "earlier output");

  // --overwrite that succeeds: replaced by exactly the new adapter, nothing else beside it.
  save_adapter_tp_shard(tmp / "checkpoint-1", random_adapter(2), 1, 2);
  consolidate_checkpoint(tmp / "checkpoint-1", tmp / "adapter", StagedDir::Existing::Replace);
  EXPECT_FALSE(fs::exists(tmp / "adapter" / "old.txt"));
  EXPECT_TRUE(fs::exists(tmp / "adapter" / "adapter_model.safetensors"));
  size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(tmp.path())) ++entries;
  EXPECT_EQ(entries, 2u);  // checkpoint-1 and adapter
}

}  // namespace
}  // namespace ll
