// `llama-lora consolidate` and `llama-lora merge` end to end on the golden fixtures: shards of
// the fixture's peft adapter consolidate and merge (--merge_into) to the same bytes as merging
// the adapter itself; merge --verify reports the logit difference (checked) and `verify`
// passes a correct merge and fails the base; --max_shard_size shards the
// output; and every bad input (missing shard, replicas that disagree, a broken
// adapter_config.json, an adapter for another model shape, an existing output folder) exits
// 1 with exactly one line on stderr and leaves no output folder behind, an existing one
// untouched unless --overwrite and the new one complete.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "core/file.h"
#include "formats/llama_config.h"
#include "model/adapter_shards.h"
#include "model/peft_adapter.h"
#include "test_util.h"

namespace ll {
namespace {

using test::expect_cli_error;
using test::run_llama_lora;
using test::shell_quote;

fs::path golden(const std::string& name) {
  return test::fixtures() / "golden" / name;
}

const fs::path kBase = golden("llama3_rope_headdim") / "model";
const fs::path kAdapter = golden("llama3_rope_headdim") / "adapter";

std::string q(const fs::path& path) {
  return shell_quote(path.string());
}

// A checkpoint holding the fixture adapter as `size` tensor-parallel shards (peft's
// adapter_config.json beside them).
void write_checkpoint(const fs::path& dir, int64_t size, const LoraAdapter* replace_rank_last) {
  const LoraAdapter adapter = load_peft_adapter(kAdapter, load_llama_config(kBase));
  fs::create_directories(dir);
  fs::copy_file(kAdapter / "adapter_config.json", dir / "adapter_config.json");
  for (int64_t rank = 0; rank < size; ++rank) {
    const bool last = rank == size - 1;
    save_adapter_tp_shard(dir, last && replace_rank_last ? *replace_rank_last : adapter, rank,
                          size);
  }
}

TEST(ConsolidateCli, ShardsConsolidateAndMergeLikeTheAdapterItself) {
  test::TempDir tmp;
  write_checkpoint(tmp / "checkpoint-30", 2, nullptr);
  const auto consolidated =
      run_llama_lora("consolidate -i " + q(tmp / "checkpoint-30") + " -o " + q(tmp / "adapter") +
                     " --merge_into " + q(kBase) + " --merged_output " + q(tmp / "merged"));
  ASSERT_EQ(consolidated.exit_code, 0) << consolidated.err;
  EXPECT_NE(consolidated.out.find("28 LoRA tensors over 2 layers"), std::string::npos)
      << consolidated.out;
  EXPECT_NE(consolidated.out.find("2 tensor-parallel shards"), std::string::npos);
  EXPECT_EQ(read_file(tmp / "adapter" / "adapter_config.json"),
            read_file(kAdapter / "adapter_config.json"));

  const auto merged = run_llama_lora("merge --model " + q(kBase) + " --adapter " + q(kAdapter) +
                                     " -o " + q(tmp / "reference"));
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  EXPECT_NE(merged.out.find("14 projections merged"), std::string::npos) << merged.out;
  EXPECT_EQ(read_file(tmp / "merged" / "model.safetensors"),
            read_file(tmp / "reference" / "model.safetensors"));
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(tmp.path()))
    names.insert(entry.path().filename());
  EXPECT_EQ(names, (std::set<std::string>{"adapter", "checkpoint-30", "merged", "reference"}));
}

TEST(MergeCli, VerifyAndShardedOutput) {
  test::TempDir tmp;
  const auto result =
      run_llama_lora("merge --model " + q(kBase) + " --adapter " + q(kAdapter) + " -o " +
                     q(tmp / "merged") + " --verify --max_shard_size 40KB");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  // The printed difference itself: fp32 merges stay within 1e-5 of the largest logit.
  const std::string key = "merge: verify: max |logit(merged) - logit(base + adapter)| = ";
  const size_t at = result.out.find(key);
  ASSERT_NE(at, std::string::npos) << result.out;
  const size_t relative_at = result.out.find("(relative ", at);
  ASSERT_NE(relative_at, std::string::npos) << result.out;
  const double relative = std::stod(result.out.substr(relative_at + 10));
  EXPECT_LE(relative, 1e-5) << result.out;
  EXPECT_NE(result.out.find("over 16 positions"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find(": PASS"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("weight files"), std::string::npos) << result.out;
  EXPECT_TRUE(fs::exists(tmp / "merged" / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(tmp / "merged" / "model-00006-of-00006.safetensors"));
  // 205 KB of fp32 in files of at most 40 KB; our own reader takes the folder.
  const auto inspect = run_llama_lora("inspect --no-tensors " + q(tmp / "merged"));
  EXPECT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(inspect.out.find("warnings"), std::string::npos) << inspect.out;
}

// Each bad input: one line, and the folder meant for outputs stays empty.
class ConsolidateMergeCliErrors : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(out()); }
  fs::path out() const { return tmp / "out"; }
  void expect_no_output() const { EXPECT_TRUE(fs::is_empty(out())) << "output left behind"; }
  test::CommandResult consolidate(const fs::path& checkpoint, const std::string& extra = "") {
    return run_llama_lora("consolidate -i " + q(checkpoint) + " -o " + q(out() / "adapter") +
                          extra);
  }
  test::TempDir tmp;
};

TEST_F(ConsolidateMergeCliErrors, MissingShard) {
  write_checkpoint(tmp / "ckpt", 4, nullptr);
  fs::remove(tmp / "ckpt" / "adapter-tp1-of-4.safetensors");
  expect_cli_error(consolidate(tmp / "ckpt"), "adapter-tp1-of-4.safetensors is missing");
  expect_no_output();
}

TEST_F(ConsolidateMergeCliErrors, ReplicatedTensorsDisagree) {
  LoraAdapter other = load_peft_adapter(kAdapter, load_llama_config(kBase));
  other.layers()[0][static_cast<size_t>(LoraTarget::Down)]->b[0] *= 2.0f;  // replicated: o/down B
  write_checkpoint(tmp / "ckpt", 2, &other);
  expect_cli_error(consolidate(tmp / "ckpt"),
                   lora_tensor_name(0, LoraTarget::Down, LoraPart::B) +
                       "' is replicated over tensor-parallel ranks but ranks 0 and 1");
  expect_no_output();
}

TEST_F(ConsolidateMergeCliErrors, BrokenAdapterConfig) {
  write_checkpoint(tmp / "ckpt", 2, nullptr);
  test::write_text(tmp / "ckpt" / "adapter_config.json", "{\"r\": 4, \"peft_type\": ");
  expect_cli_error(consolidate(tmp / "ckpt"), "adapter_config.json: not valid JSON");
  expect_no_output();

  // merge reads adapter_config.json too.
  fs::create_directories(tmp / "adapter");
  fs::copy_file(kAdapter / "adapter_model.safetensors",
                tmp / "adapter" / "adapter_model.safetensors");
  test::write_text(tmp / "adapter" / "adapter_config.json", "[1, 2");
  expect_cli_error(run_llama_lora("merge --model " + q(kBase) + " --adapter " + q(tmp / "adapter") +
                                  " -o " + q(out() / "merged")),
                   "adapter_config.json: not valid JSON");
  expect_no_output();
}

TEST_F(ConsolidateMergeCliErrors, AdapterForAnotherModelShape) {
  expect_cli_error(run_llama_lora("merge --model " + q(kBase) + " --adapter " +
                                  q(golden("gqa_tied") / "adapter") + " -o " + q(out() / "merged")),
                   "the adapter was made for another model shape");
  expect_no_output();
  // Through consolidate --merge_into: neither the adapter nor the merged folder appears.
  write_checkpoint(tmp / "ckpt", 2, nullptr);
  expect_cli_error(consolidate(tmp / "ckpt", " --merge_into " + q(golden("gqa_tied") / "model") +
                                                 " --merged_output " + q(out() / "merged")),
                   "the adapter was made for another model shape");
  expect_no_output();
}

TEST_F(ConsolidateMergeCliErrors, BadMaxShardSize) {
  expect_cli_error(run_llama_lora("merge --model " + q(kBase) + " --adapter " + q(kAdapter) +
                                  " -o " + q(out() / "merged") + " --max_shard_size 5XB"),
                   "--max_shard_size '5XB'");
  expect_no_output();
}

TEST(ConsolidateMergeCliOutput, ExistingFolderRefusedUnlessOverwriteAndReplacedOnlyOnSuccess) {
  test::TempDir tmp;
  write_checkpoint(tmp / "ckpt", 2, nullptr);
  const std::string merge_args =
      "merge --model " + q(kBase) + " --adapter " + q(kAdapter) + " -o " + q(tmp / "merged");
  const std::string consolidate_args =
      "consolidate -i " + q(tmp / "ckpt") + " -o " + q(tmp / "adapter");
  for (const char* dir : {"merged", "adapter"}) test::write_text(tmp / dir / "old.txt", "old");

  expect_cli_error(run_llama_lora(merge_args), "already exists (use --overwrite");
  expect_cli_error(run_llama_lora(consolidate_args), "already exists (use --overwrite");
  // --overwrite with inputs that fail: the old folders stay as they were.
  expect_cli_error(run_llama_lora("merge --model " + q(kBase) + " --adapter " +
                                  q(golden("gqa_tied") / "adapter") + " -o " + q(tmp / "merged") +
                                  " --overwrite"),
                   "another model shape");
  fs::rename(tmp / "ckpt" / "adapter-tp1-of-2.safetensors", tmp / "aside.safetensors");
  expect_cli_error(run_llama_lora(consolidate_args + " --overwrite"), "is missing");
  for (const char* dir : {"merged", "adapter"}) {
    EXPECT_EQ(read_file(tmp / dir / "old.txt"), "old") << dir;
  }
  // --overwrite that succeeds: the new folders replace the old ones.
  fs::rename(tmp / "aside.safetensors", tmp / "ckpt" / "adapter-tp1-of-2.safetensors");
  ASSERT_EQ(run_llama_lora(merge_args + " --overwrite").exit_code, 0);
  ASSERT_EQ(run_llama_lora(consolidate_args + " --overwrite").exit_code, 0);
  for (const char* dir : {"merged", "adapter"}) {
    EXPECT_FALSE(fs::exists(tmp / dir / "old.txt")) << dir;
  }
  EXPECT_TRUE(fs::exists(tmp / "merged" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(tmp / "adapter" / "adapter_model.safetensors"));
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(tmp.path()))
    names.insert(entry.path().filename());
  EXPECT_EQ(names, (std::set<std::string>{"adapter", "ckpt", "merged"}));
}

TEST(VerifyCli, PassesACorrectMergeAndFailsAnotherModel) {
  test::TempDir tmp;
  ASSERT_EQ(run_llama_lora("merge --model " + q(kBase) + " --adapter " + q(kAdapter) + " -o " +
                           q(tmp / "merged"))
                .exit_code,
            0);
  const std::string args = "verify --base " + q(kBase) + " --adapter " + q(kAdapter);
  const auto ok = run_llama_lora(args + " --merged " + q(tmp / "merged"));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("tolerance 0.0001 (F32 merged weights): PASS"), std::string::npos)
      << ok.out;
  // The base itself is not base + adapter: exit 1, the numbers on stdout, one line on stderr.
  const auto base = run_llama_lora(args + " --merged " + q(kBase));
  EXPECT_NE(base.out.find(": FAIL"), std::string::npos) << base.out;
  expect_cli_error(base, "the merged model is not base + adapter (relative logit difference");
  // A tolerance above the difference lets it pass; a bad one is refused.
  EXPECT_EQ(run_llama_lora(args + " --merged " + q(kBase) + " --tolerance 10").exit_code, 0);
  expect_cli_error(run_llama_lora(args + " --merged " + q(tmp / "merged") + " --tolerance -1"),
                   "--tolerance must be a finite number >= 0");
  expect_cli_error(run_llama_lora(args + " --merged " + q(tmp / "nothing")), "nothing");
}

}  // namespace
}  // namespace ll
