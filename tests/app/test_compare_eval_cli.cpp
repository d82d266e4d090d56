// `compare` and `eval` on a model the tool makes itself (init --preset tiny) and a dataset it
// generates (make-data): outputs are consistent across the ways of running the same model,
// eval reproduces the loss `train` logged on the same split, and bad input is one clear line.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>

#include "core/file.h"
#include "test_util.h"

namespace ll {
namespace {

using test::run_llama_lora;
using test::shell_quote;

class CompareEval : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const std::string d = shell_quote((*dir_).path().string());
    ASSERT_EQ(run_llama_lora("init --preset tiny -o " + d + "/model").exit_code, 0);
    ASSERT_EQ(run_llama_lora("make-data --preset sql --rows 300 --seed 1 -o " + d + "/sql.jsonl")
                  .exit_code,
              0);
    // Two optimizer steps at a high learning rate: an adapter whose B is no longer zero, and
    // the eval loss train logs for it (eval_steps 2 = at the end) on 40 held-out rows.
    // --bf16 False: `eval` computes in fp32, so train's logged loss must come from fp32 too.
    const auto trained = run_llama_lora(
        "train --recipe sql --model " + d + "/model --data " + d + "/sql.jsonl --output_dir " + d +
        "/run --max_steps 2 --max_seq_length 128 --learning_rate 5e-2"
        " --eval_rows 40 --eval_steps 2 --save_steps 2 --per_device_train_batch_size 2"
        " --gradient_accumulation_steps 1 --bf16 False");
    ASSERT_EQ(trained.exit_code, 0) << trained.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string path(const std::string& name) {
    return shell_quote(((*dir_).path() / name).string());
  }
  static inline test::TempDir* dir_ = nullptr;
};

TEST_F(CompareEval, EvalReproducesTheLossTrainLogged) {
  double logged = -1;
  std::ifstream metrics((*dir_).path() / "run" / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row.contains("eval_loss") && row["step"] == 2) logged = row["eval_loss"].get<double>();
  }
  ASSERT_GT(logged, 0) << "train logged no eval_loss at step 2";
  const auto result = run_llama_lora("eval --model " + path("model") + " --adapter " + path("run") +
                                     " --data " + path("sql.jsonl") +
                                     " --eval_rows 40 --max_seq_length 128 --limit 3"
                                     " --max_new_tokens 8 --json");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto out = nlohmann::json::parse(result.out);
  // Same rows, packing, batches and kernels as the trainer's evaluation: the sums run in the
  // same order, so the two agree to the last bit; 1e-12 only allows printing round trips.
  EXPECT_NEAR(out["eval_loss"].get<double>(), logged, 1e-12 * logged);
  EXPECT_EQ(out["eval_rows"], 40);
  EXPECT_EQ(out["generated_rows"], 3);
  EXPECT_EQ(out["sql"]["rows"], 3);
  EXPECT_NEAR(out["perplexity"].get<double>(), std::exp(logged), 1e-9 * std::exp(logged));
}

TEST_F(CompareEval, AdapterFolderAndItsBaseGiveTheSameAnswersAsGenerate) {
  const auto result = run_llama_lora("compare --base " + path("model") + " --tuned " + path("run") +
                                     " --data " + path("sql.jsonl") +
                                     " --eval_rows 40 --examples 0,7 --max_new_tokens 6 --json");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto out = nlohmann::json::parse(result.out);
  ASSERT_EQ(out["examples"].size(), 2u);
  EXPECT_EQ(out["examples"][0]["example"], 0);
  EXPECT_EQ(out["examples"][1]["example"], 7);
  // The tuned answer must be what `generate` with the adapter prints for the same messages.
  const auto& first = out["examples"][0];
  const auto generated = run_llama_lora(
      "generate --model " + path("model") + " --adapter " + path("run") + " --greedy" +
      " --max_new_tokens 6 --messages " + shell_quote(first["prompt"].dump()));
  ASSERT_EQ(generated.exit_code, 0) << generated.err;
  EXPECT_EQ(generated.out, first["tuned_output"].get<std::string>() + "\n");
  const auto base =
      run_llama_lora("generate --model " + path("model") + " --greedy" +
                     " --max_new_tokens 6 --messages " + shell_quote(first["prompt"].dump()));
  ASSERT_EQ(base.exit_code, 0) << base.err;
  EXPECT_EQ(base.out, first["base_output"].get<std::string>() + "\n");
  // Readable form names the sections the seed's step 3 prints.
  const auto text =
      run_llama_lora("compare --base " + path("model") + " --tuned " + path("run") + " --data " +
                     path("sql.jsonl") + " --eval_rows 40 --examples 3 --max_new_tokens 4");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  for (const char* section : {"PROMPT:", "BASE MODEL OUTPUT:", "FINETUNED MODEL OUTPUT:"}) {
    EXPECT_NE(text.out.find(section), std::string::npos) << section;
  }
}

TEST_F(CompareEval, ATokenizerFolderStandsInForABaseWithoutChatTemplate) {
  // The seed's base (Meta-Llama-3-8B) has no chat template; it trains, merges and compares
  // with the Instruct model's tokenizer. Here: the tiny model without its template as the
  // base, and the tiny model's own folder as the tokenizer.
  const fs::path root = (*dir_).path();
  fs::copy(root / "model", root / "bare", fs::copy_options::recursive);
  auto config = nlohmann::json::parse(read_file(root / "bare" / "tokenizer_config.json"));
  config.erase("chat_template");
  test::write_text(root / "bare" / "tokenizer_config.json", config.dump());
  const std::string common =
      " --data " + path("sql.jsonl") + " --eval_rows 40 --examples 0,7 --max_new_tokens 6 --json";

  const auto refused =
      run_llama_lora("compare --base " + path("bare") + " --tuned " + path("run") + common);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("no chat_template"), std::string::npos) << refused.err;

  const auto own =
      run_llama_lora("compare --base " + path("model") + " --tuned " + path("run") + common);
  const auto lent = run_llama_lora("compare --base " + path("bare") + " --tuned " + path("run") +
                                   " --tokenizer " + path("model") + common);
  ASSERT_EQ(own.exit_code, 0) << own.err;
  ASSERT_EQ(lent.exit_code, 0) << lent.err;
  const auto own_json = nlohmann::json::parse(own.out);
  const auto lent_json = nlohmann::json::parse(lent.out);
  ASSERT_EQ(own_json["examples"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(lent_json["examples"][i]["base_output"], own_json["examples"][i]["base_output"]);
    EXPECT_EQ(lent_json["examples"][i]["tuned_output"], own_json["examples"][i]["tuned_output"]);
  }

  // consolidate --merge_into the bare base with --tokenizer: the merged folder carries the
  // lent tokenizer files, so compare needs no --tokenizer for it.
  const auto merged = run_llama_lora(
      "consolidate -i " + path("run/checkpoint-2") + " -o " + path("joined") + " --merge_into " +
      path("bare") + " --merged_output " + path("merged") + " --tokenizer " + path("model"));
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  EXPECT_EQ(read_file(root / "merged" / "tokenizer_config.json"),
            read_file(root / "model" / "tokenizer_config.json"));
  EXPECT_EQ(read_file(root / "merged" / "config.json"), read_file(root / "bare" / "config.json"));
  const auto eval =
      run_llama_lora("eval --model " + path("bare") + " --tokenizer " + path("model") + " --data " +
                     path("sql.jsonl") + " --eval_rows 40 --limit 1 --max_new_tokens 4 --json");
  EXPECT_EQ(eval.exit_code, 0) << eval.err;

  const auto no_tokenizer =
      run_llama_lora("merge --model " + path("bare") + " --adapter " + path("joined") + " -o " +
                     path("merged2") + " --tokenizer " + path("nothing"));
  EXPECT_NE(no_tokenizer.exit_code, 0);
  EXPECT_NE(no_tokenizer.err.find("--tokenizer"), std::string::npos) << no_tokenizer.err;
  EXPECT_NE(no_tokenizer.err.find("no tokenizer.json"), std::string::npos) << no_tokenizer.err;
  EXPECT_FALSE(fs::exists(root / "merged2"));
}

TEST_F(CompareEval, BadInputIsOneLine) {
  const std::string common = " --data " + path("sql.jsonl") + " --eval_rows 40";
  struct Case {
    std::string args;
    std::string message;
  };
  const Case cases[] = {
      {"compare --base " + path("model") + " --tuned " + path("run") + common + " --examples 40",
       "40 is not in the evaluation split"},
      {"compare --base " + path("model") + " --tuned " + path("run") + common + " --examples x",
       "'x' is not an example index"},
      {"compare --base " + path("model") + " --tuned " + path("nothing") + common + " --examples 1",
       "nothing"},
      {"eval --model " + path("model") + " --data " + path("missing.jsonl"), "missing.jsonl"},
      {"eval --model " + path("model") + common + " --limit -1", "--limit must be >= 0"},
  };
  for (const Case& c : cases) {
    const auto result = run_llama_lora(c.args);
    EXPECT_NE(result.exit_code, 0) << c.args;
    EXPECT_NE(result.err.find(c.message), std::string::npos) << c.args << "\n" << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  }
}

}  // namespace
}  // namespace ll
