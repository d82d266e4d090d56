// Stopping end to end (tools/stopping.h) with a model whose greedy answer is known: a tiny
// model rewired into a chain. Its blocks add nothing (o_proj and down_proj zero), so the next
// token depends on the last one only, through embed_tokens and lm_head:
//   any other token -> SELECT -> " name" -> <|eot_id|> -> " FROM" -> " FROM" -> ...
// Its generation_config names <|end_of_text|> only (as Meta-Llama-3-8B's says 128001), its
// template closes turns with <|eot_id|>: the seed's case, where an answer ran past its turn.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/file.h"
#include "formats/safetensors.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace ll {
namespace {

using test::run_llama_lora;
using test::shell_quote;

struct Chain {
  int32_t select = 0, name = 0, eot = 0, from = 0;
};

// Rewrites `dir`'s weights (fp32) into the chain above; see the top of the file.
void write_chain_weights(const fs::path& dir, const Chain& chain) {
  const SafetensorsModel model = SafetensorsModel::open(dir);
  std::map<std::string, std::vector<float>> values;
  std::vector<TensorToWrite> tensors;
  for (const std::string& name : model.tensor_names()) {
    const TensorInfo& info = model.info(name);
    std::vector<float>& v = values[name];
    v = model.read_f32(name);
    const bool norm = name.ends_with("norm.weight");
    const bool writes_residual =
        name.ends_with("o_proj.weight") || name.ends_with("down_proj.weight");
    if (norm) std::fill(v.begin(), v.end(), 1.0f);
    if (writes_residual || name == "model.embed_tokens.weight" || name == "lm_head.weight") {
      std::fill(v.begin(), v.end(), 0.0f);
    }
    tensors.push_back({name, DType::F32, info.shape, {}});
  }
  const int64_t hidden = model.info("lm_head.weight").shape[1];
  const int64_t vocab = model.info("lm_head.weight").shape[0];
  // embed[t] = e_k: k = 1..4 for the chain's tokens, 0 for all others. After the final
  // RMSNorm (weight 1) it is sqrt(hidden) e_k, so lm_head row u = e_k gives u the only
  // non-zero logit after a token of class k.
  auto& embed = values["model.embed_tokens.weight"];  // [vocab, hidden]
  auto& head = values["lm_head.weight"];              // [vocab, hidden]
  const auto at = [hidden](int64_t row, int64_t column) { return row * hidden + column; };
  for (int64_t t = 0; t < vocab; ++t) embed[at(t, 0)] = 1.0f;
  const int32_t order[] = {chain.select, chain.name, chain.eot, chain.from};
  for (int64_t k = 0; k < 4; ++k) {
    embed[at(order[k], 0)] = 0.0f;
    embed[at(order[k], k + 1)] = 1.0f;
    head[at(order[k], k)] = 1.0f;  // after class k comes order[k]
  }
  head[at(chain.from, 4)] = 1.0f;  // and " FROM" repeats itself
  for (TensorToWrite& t : tensors) t.data = std::as_bytes(std::span(values[t.name]));
  write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
}

const std::string kMessages = R"([{"role": "user", "content": "List the users."}])";

class StoppingCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const fs::path chain_dir = *dir_ / "chain";
    auto made = run_llama_lora("init --preset tiny -o " + shell_quote(chain_dir.string()));
    ASSERT_EQ(made.exit_code, 0) << made.err;
    const Tokenizer tokenizer = Tokenizer::load(chain_dir);
    const auto words = tokenizer.encode("SELECT name FROM", AddSpecialTokens::No);
    ASSERT_EQ(words.size(), 3u);
    chain_ = {words[0], words[1], *tokenizer.token_to_id("<|eot_id|>"), words[2]};
    const int32_t end_of_text = *tokenizer.token_to_id("<|end_of_text|>");
    test::write_text(chain_dir / "generation_config.json",
                     nlohmann::json{{"eos_token_id", end_of_text}}.dump());
    write_chain_weights(chain_dir, chain_);
    // The same model as a base folder without chat template (Meta-Llama-3-8B has none).
    fs::copy(chain_dir, *dir_ / "base", fs::copy_options::recursive);
    auto config = nlohmann::json::parse(read_file(*dir_ / "base" / "tokenizer_config.json"));
    config.erase("chat_template");
    test::write_text(*dir_ / "base" / "tokenizer_config.json", config.dump());
    made = run_llama_lora("make-data --preset sql --rows 60 --seed 1 -o " +
                          shell_quote((*dir_ / "sql.jsonl").string()));
    ASSERT_EQ(made.exit_code, 0) << made.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string path(const std::string& name) { return shell_quote((*dir_ / name).string()); }
  // The stdout of a run, which must succeed.
  static std::string out_of(const std::string& args) {
    const auto result = run_llama_lora(args);
    EXPECT_EQ(result.exit_code, 0) << args << "\n" << result.err;
    return result.out;
  }
  // `generate` of the chain folder answering kMessages, plus `flags`.
  static std::string chat_generate(const std::string& flags) {
    return "generate --model " + path("chain") + " --messages " + shell_quote(kMessages) +
           " --max_new_tokens 6" + flags;
  }
  static std::string ids(std::vector<int32_t> tokens) {
    std::string line;
    for (int32_t id : tokens) {
      if (!line.empty()) line += ' ';
      line += std::to_string(id);
    }
    line += '\n';
    return line;
  }
  static inline test::TempDir* dir_ = nullptr;
  static inline Chain chain_;
};

TEST_F(StoppingCli, WithoutATemplateTheChainRunsPastEndOfTurn) {
  // The premise: stopping at generation_config's EOS only, the answer runs on past <|eot_id|>.
  const auto result =
      run_llama_lora("generate --model " + path("base") + " --prompt_ids 5 --max_new_tokens 6");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "SELECT name FROM FROM FROM\n");
  const auto printed = run_llama_lora("generate --model " + path("base") +
                                      " --prompt_ids 5 --max_new_tokens 6 --print_ids");
  EXPECT_EQ(printed.out,
            ids({chain_.select, chain_.name, chain_.eot, chain_.from, chain_.from, chain_.from}));
  // --eos_token_id adds the stop by hand.
  const auto added = run_llama_lora("generate --model " + path("base") +
                                    " --prompt_ids 5 --max_new_tokens 6 --eos_token_id " +
                                    std::to_string(chain_.eot));
  EXPECT_EQ(added.out, "SELECT name\n");
}

TEST_F(StoppingCli, GenerateStopsAtTheTemplatesEndOfTurnAndDoesNotPrintIt) {
  EXPECT_EQ(out_of(chat_generate("")), "SELECT name\n");
  // The ids keep the stop id, as transformers' generate returns them.
  EXPECT_EQ(out_of(chat_generate(" --print_ids")), ids({chain_.select, chain_.name, chain_.eot}));
  // A plain --prompt of the same folder stops there too.
  EXPECT_EQ(out_of("generate --model " + path("chain") +
                   " --prompt 'List the users.' --max_new_tokens 6"),
            "SELECT name\n");
}

TEST_F(StoppingCli, CompareWithTheInstructTokenizerStopsBothAnswersAtEndOfTurn) {
  // The seed's step 3: a base whose generation_config stops at <|end_of_text|> only, prompts
  // rendered with the Instruct tokenizer's template (--tokenizer).
  const auto result =
      run_llama_lora("compare --base " + path("base") + " --tuned " + path("chain") +
                     " --tokenizer " + path("chain") + " --data " + path("sql.jsonl") +
                     " --eval_rows 10 --examples 0,3 --max_new_tokens 6 --json");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto out = nlohmann::json::parse(result.out);
  ASSERT_EQ(out["examples"].size(), 2u);
  for (const auto& example : out["examples"]) {
    EXPECT_EQ(example["base_output"], "SELECT name");
    EXPECT_EQ(example["tuned_output"], "SELECT name");
  }
}

TEST_F(StoppingCli, StopStringsCutTheTextAndStopEachPromptOnItsOwn) {
  // "T n" starts in the last byte of "SELECT" and ends inside " name": the answer stops after
  // " name" and is cut inside "SELECT".
  EXPECT_EQ(out_of(chat_generate(" --stop 'T n'")), "SELEC\n");
  EXPECT_EQ(out_of(chat_generate(" --stop 'T n' --print_ids")), ids({chain_.select, chain_.name}));
  // A batch: prompt 2 ends with SELECT, so its answer starts at " name" and stops one token
  // earlier than prompt 1's; the earlier of two strings cuts.
  const auto batch = run_llama_lora(
      "generate --model " + path("base") + " --prompt_ids 5 --prompt_ids " +
      std::to_string(chain_.select) + " --max_new_tokens 6 --stop ' name' --stop FROM --print_ids");
  ASSERT_EQ(batch.exit_code, 0) << batch.err;
  EXPECT_EQ(batch.out, ids({chain_.select, chain_.name}) + ids({chain_.name}));
  const auto batch_text =
      run_llama_lora("generate --model " + path("base") + " --prompt_ids 5 --prompt_ids " +
                     std::to_string(chain_.select) + " --max_new_tokens 6 --stop ' name'");
  EXPECT_EQ(batch_text.out, "--- prompt 1 ---\nSELECT\n--- prompt 2 ---\n\n");
  // compare and eval take --stop as well.
  const auto compared =
      run_llama_lora("compare --base " + path("chain") + " --tuned " + path("chain") + " --data " +
                     path("sql.jsonl") + " --eval_rows 10 --examples 0 --stop ' n' --json");
  ASSERT_EQ(compared.exit_code, 0) << compared.err;
  EXPECT_EQ(nlohmann::json::parse(compared.out)["examples"][0]["tuned_output"], "SELECT");
  test::expect_cli_error(run_llama_lora("eval --model " + path("chain") + " --data " +
                                        path("sql.jsonl") + " --stop ''"),
                         "--stop: an empty stop string");
}

}  // namespace
}  // namespace ll
