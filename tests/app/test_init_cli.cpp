// End-to-end tests of `llama-lora init`: the folder it writes reads back with our own
// readers (config, safetensors, tokenizer, chat template) with the preset's shapes in bf16;
// the same seed gives the same bytes; an existing folder is refused unless --overwrite and
// left untouched; a given tokenizer is copied and sets the vocab and special token ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/file.h"
#include "formats/llama_config.h"
#include "formats/safetensors.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/reference_templates.h"
#include "tokenizer/tokenizer.h"

namespace ll {
namespace {

using nlohmann::json;
using test::run_llama_lora;
using test::shell_quote;

json read_json(const fs::path& path) {
  return json::parse(read_file(path));
}

std::string init_args(const fs::path& out, const std::string& extra = "") {
  return "init --preset tiny -o " + shell_quote(out.string()) + (extra.empty() ? "" : " " + extra);
}

// Every file of a folder, by name.
std::map<std::string, std::string> folder_bytes(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    out[entry.path().filename().string()] = read_file(entry.path());
  }
  return out;
}

TEST(InitCli, TinyFolderReadsBack) {
  test::TempDir tmp;
  const fs::path out = tmp / "tiny";
  const test::CommandResult result = run_llama_lora(init_args(out));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("preset tiny"), std::string::npos) << result.out;

  // Exactly the files of a Hugging Face model folder, and no staging leftovers beside it.
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(out)) names.insert(entry.path().filename());
  EXPECT_EQ(names, (std::set<std::string>{"config.json", "generation_config.json",
                                          "model.safetensors", "special_tokens_map.json",
                                          "tokenizer.json", "tokenizer_config.json"}));
  size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(tmp.path())) ++entries;
  EXPECT_EQ(entries, 1u);

  const LlamaConfig config = load_llama_config(out);
  EXPECT_EQ(config.vocab_size, 1024);
  EXPECT_EQ(config.hidden_size, 64);
  EXPECT_EQ(config.num_hidden_layers, 2);
  EXPECT_EQ(config.num_attention_heads, 4);
  EXPECT_EQ(config.num_key_value_heads, 2);
  EXPECT_EQ(config.intermediate_size, 176);
  EXPECT_EQ(config.max_position_embeddings, 2048);
  EXPECT_FALSE(config.tie_word_embeddings);
  EXPECT_EQ(config.torch_dtype, "bfloat16");

  // Special ids agree with the tokenizer written beside them.
  const Tokenizer tokenizer = Tokenizer::load(out);
  EXPECT_EQ(tokenizer.vocab_size(), 1024);
  EXPECT_EQ(config.bos_token_id, tokenizer.token_to_id("<|begin_of_text|>"));
  EXPECT_EQ(config.bos_token_id, tokenizer.bos_id());
  ASSERT_EQ(config.eos_token_ids.size(), 1u);
  EXPECT_EQ(config.eos_token_ids[0], tokenizer.token_to_id("<|end_of_text|>"));
  const json generation = read_json(out / "generation_config.json");
  EXPECT_EQ(generation["bos_token_id"], 1008);
  EXPECT_EQ(generation["eos_token_id"], json::array({1009, 1017}));  // end_of_text, eot_id

  const json tokenizer_config = read_json(out / "tokenizer_config.json");
  EXPECT_EQ(tokenizer_config["chat_template"],
            std::string(reference_template_source(ReferenceTemplate::Llama3)));
  EXPECT_EQ(tokenizer_config["model_max_length"], 2048);
  EXPECT_EQ(ChatTemplate::load(out).end_of_turn(), "<|eot_id|>");

  const SafetensorsModel model = SafetensorsModel::open(out);
  const auto shapes = llama_tensor_shapes(config);
  ASSERT_EQ(model.tensor_names().size(), shapes.size());
  for (const auto& [name, shape] : shapes) {
    ASSERT_TRUE(model.contains(name)) << name;
    EXPECT_EQ(model.info(name).shape, shape) << name;
    EXPECT_EQ(model.info(name).dtype, DType::BF16) << name;
  }
  EXPECT_EQ(model.info("model.embed_tokens.weight").shape, (std::vector<int64_t>{1024, 64}));
  EXPECT_EQ(model.info("lm_head.weight").shape, (std::vector<int64_t>{1024, 64}));
  for (const float v : model.read_f32("model.layers.1.post_attention_layernorm.weight")) {
    ASSERT_EQ(v, 1.0f);
  }
  const std::vector<float> embed = model.read_f32("model.embed_tokens.weight");
  double sum_sq = 0;
  for (const float v : embed) sum_sq += static_cast<double>(v) * v;
  // The tiny preset's initializer_range (0.25, see model_presets.cpp); 65,536 normal draws
  // estimate the std within ~0.3% (1/sqrt(2n)), so 2% is a safe bound.
  EXPECT_NEAR(std::sqrt(sum_sq / static_cast<double>(embed.size())), 0.25, 0.005);
}

TEST(InitCli, SameSeedSameBytes) {
  test::TempDir tmp;
  ASSERT_EQ(run_llama_lora(init_args(tmp / "a", "--seed 5")).exit_code, 0);
  ASSERT_EQ(run_llama_lora(init_args(tmp / "b", "--seed 5")).exit_code, 0);
  ASSERT_EQ(run_llama_lora(init_args(tmp / "c", "--seed 6")).exit_code, 0);
  const auto a = folder_bytes(tmp / "a");
  const auto c = folder_bytes(tmp / "c");
  EXPECT_EQ(a, folder_bytes(tmp / "b"));
  ASSERT_EQ(a.size(), c.size());
  EXPECT_NE(a.at("model.safetensors"), c.at("model.safetensors"));
  EXPECT_EQ(a.at("tokenizer.json"), c.at("tokenizer.json"));  // the tokenizer has no seed
  EXPECT_EQ(a.at("config.json"), c.at("config.json"));
}

TEST(InitCli, RefusesAnExistingFolderUnlessOverwrite) {
  test::TempDir tmp;
  const fs::path out = tmp / "model";
  test::write_text(out / "notes.txt", "keep me");
  const test::CommandResult refused = run_llama_lora(init_args(out));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("already exists"), std::string::npos) << refused.err;
  EXPECT_EQ(folder_bytes(out), (std::map<std::string, std::string>{{"notes.txt", "keep me"}}));

  const test::CommandResult replaced = run_llama_lora(init_args(out, "--overwrite"));
  ASSERT_EQ(replaced.exit_code, 0) << replaced.err;
  EXPECT_FALSE(fs::exists(out / "notes.txt"));
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(tmp.path())) ++entries;
  EXPECT_EQ(entries, 1u);  // the old folder moved aside was removed
}

TEST(InitCli, BadArgumentsLeaveNothing) {
  test::TempDir tmp;
  const test::CommandResult unknown =
      run_llama_lora("init --preset llama2-7b -o " + shell_quote((tmp / "x").string()));
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("llama2-7b"), std::string::npos) << unknown.err;
  const test::CommandResult no_tokenizer =
      run_llama_lora(init_args(tmp / "y", "--tokenizer " + shell_quote(tmp.path().string())));
  EXPECT_NE(no_tokenizer.exit_code, 0);
  EXPECT_NE(no_tokenizer.err.find("tokenizer.json"), std::string::npos) << no_tokenizer.err;
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(InitCli, ShardsLikeSavePretrained) {
  test::TempDir tmp;
  const test::CommandResult result =
      run_llama_lora(init_args(tmp / "m", "--seed 9 --max-shard-size 100KB"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  // 447,104 bytes of weights in 100,000-byte shards, split as huggingface_hub's
  // split_torch_state_dict_into_shards does: the embedding and lm_head (131,072 bytes each)
  // exceed a shard and get their own, listed when met; a layer (92,416 bytes) fills one, so
  // layer 1 starts the next, which stays open (with the final norm) until the end.
  const json index = read_json(tmp / "m" / "model.safetensors.index.json");
  EXPECT_EQ(index["metadata"]["total_size"], 223552 * 2);
  const json& map = index["weight_map"];
  EXPECT_EQ(map["model.embed_tokens.weight"], "model-00001-of-00004.safetensors");
  EXPECT_EQ(map["model.layers.0.self_attn.q_proj.weight"], "model-00002-of-00004.safetensors");
  EXPECT_EQ(map["model.layers.0.post_attention_layernorm.weight"],
            "model-00002-of-00004.safetensors");
  EXPECT_EQ(map["model.layers.1.self_attn.q_proj.weight"], "model-00004-of-00004.safetensors");
  EXPECT_EQ(map["model.norm.weight"], "model-00004-of-00004.safetensors");
  EXPECT_EQ(map["lm_head.weight"], "model-00003-of-00004.safetensors");
  EXPECT_FALSE(fs::exists(tmp / "m" / "model.safetensors"));

  // Same seed, one file: the same tensors.
  ASSERT_EQ(run_llama_lora(init_args(tmp / "one", "--seed 9")).exit_code, 0);
  const SafetensorsModel sharded = SafetensorsModel::open(tmp / "m");
  const SafetensorsModel single = SafetensorsModel::open(tmp / "one");
  ASSERT_EQ(sharded.tensor_names(), single.tensor_names());
  for (const std::string& name : single.tensor_names()) {
    const auto a = sharded.data(name);
    const auto b = single.data(name);
    ASSERT_TRUE(std::equal(a.begin(), a.end(), b.begin(), b.end())) << name;
  }

  for (const char* bad : {"5XB", "-5GB", "0", "GB"}) {
    const test::CommandResult refused =
        run_llama_lora(init_args(tmp / "bad", std::string("--max-shard-size ") + bad));
    EXPECT_NE(refused.exit_code, 0) << bad;
    EXPECT_NE(refused.err.find("max-shard-size"), std::string::npos) << refused.err;
  }
  EXPECT_FALSE(fs::exists(tmp / "bad"));
}

TEST(InitCli, BuiltinTokenizerSize) {
  test::TempDir tmp;
  const test::CommandResult result = run_llama_lora(init_args(tmp / "m", "--tokenizer-vocab 512"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(load_llama_config(tmp / "m").vocab_size, 512);
  EXPECT_EQ(Tokenizer::load(tmp / "m").vocab_size(), 512);
}

TEST(InitCli, CopiesAGivenTokenizer) {
  const fs::path source = test::shared_data() / "llama3-tokenizer";
  LL_REQUIRE_SHARED(source);
  test::TempDir tmp;
  const fs::path out = tmp / "tiny-llama3";
  const test::CommandResult result =
      run_llama_lora(init_args(out, "--tokenizer " + shell_quote(source.string())));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(read_file(out / "tokenizer.json"), read_file(source / "tokenizer.json"));
  EXPECT_EQ(read_file(out / "tokenizer_config.json"), read_file(source / "tokenizer_config.json"));
  EXPECT_FALSE(fs::exists(out / "special_tokens_map.json"));  // the source has none

  const LlamaConfig config = load_llama_config(out);
  EXPECT_EQ(config.vocab_size, 128256);  // tiny takes the larger tokenizer's size
  EXPECT_EQ(config.bos_token_id, 128000);
  EXPECT_EQ(config.eos_token_ids, std::vector<int64_t>{128001});
  EXPECT_EQ(read_json(out / "generation_config.json")["eos_token_id"],
            json::array({128001, 128009}));
  const SafetensorsModel model = SafetensorsModel::open(out);
  EXPECT_EQ(model.info("model.embed_tokens.weight").shape, (std::vector<int64_t>{128256, 64}));

  // A real model's vocab smaller than the tokenizer is refused, leaving nothing behind.
  const test::CommandResult too_big =
      run_llama_lora("init --preset smol-135m -o " + shell_quote((tmp / "smol").string()) +
                     " --tokenizer " + shell_quote(source.string()));
  EXPECT_NE(too_big.exit_code, 0);
  EXPECT_NE(too_big.err.find("128,256 tokens"), std::string::npos) << too_big.err;
  size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(tmp.path())) ++entries;
  EXPECT_EQ(entries, 1u);  // only tiny-llama3: no "smol", no staging folder
}

}  // namespace
}  // namespace ll
