// `llama-lora generate` end to end: the printed ids equal the library's generate_tokens on the
// same prompt (ids given directly, a --prompt tokenised with the post-processor, --messages
// rendered with the chat template plus the generation prompt), a batch prints one line per
// prompt, an adapter changes the output, sampling with a seed repeats, the text output is the
// decoded ids, and bad input gives one-line errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "model/llama_generate.h"
#include "model/peft_adapter.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace ll {
namespace {

using test::shell_quote;

fs::path golden(const std::string& name) {
  return test::fixtures() / "golden" / name;
}

std::string ids_line(const std::vector<int32_t>& ids) {
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) line += ' ';
    line += std::to_string(ids[i]);
  }
  return line + "\n";
}

// Greedy new ids of each prompt, computed in process, with the model's EOS ids.
std::vector<std::vector<int32_t>> expected_ids(const fs::path& model, const fs::path& adapter_dir,
                                               const std::vector<std::vector<int32_t>>& prompts,
                                               int64_t max_new_tokens) {
  const LlamaWeights base = load_llama_weights(model);
  std::optional<LoraAdapter> adapter;
  if (!adapter_dir.empty()) adapter = load_peft_adapter(adapter_dir, base.config);
  LlamaGenerator generator(base, adapter ? &*adapter : nullptr);
  GenerateOptions options;
  options.max_new_tokens = max_new_tokens;
  options.eos_token_ids = load_generation_defaults(model, base.config).eos_token_ids;
  return generate_tokens(generator, prompts, options);
}

std::string model_arg(const fs::path& dir) {
  return "generate --model " + shell_quote(dir.string()) + " ";
}

// One line on stderr that says it is an error.
void expect_one_line_error(const test::CommandResult& result, const std::string& needle) {
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("error"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find(needle), std::string::npos) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

TEST(GenerateCli, PromptIdsBatchPrintsTheLibrarysTokens) {
  const fs::path model = golden("gqa_tied") / "model";
  const fs::path adapter = golden("gqa_tied") / "adapter";
  const std::vector<std::vector<int32_t>> prompts = {{3, 14, 15, 92}, {6, 5}};
  const auto base_ids = expected_ids(model, {}, prompts, 9);
  const auto lora_ids = expected_ids(model, adapter, prompts, 9);
  ASSERT_NE(base_ids, lora_ids);

  auto result = test::run_llama_lora(model_arg(model) +
                                     "--prompt_ids '3 14 15 92' --prompt_ids '6 5' "
                                     "--max_new_tokens 9 --print_ids");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, ids_line(base_ids[0]) + ids_line(base_ids[1]));

  result = test::run_llama_lora(model_arg(model) + "--adapter " + shell_quote(adapter.string()) +
                                " --prompt_ids '3 14 15 92' --prompt_ids '6 5' "
                                "--max_new_tokens 9 --print_ids --greedy");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, ids_line(lora_ids[0]) + ids_line(lora_ids[1]));
}

TEST(GenerateCli, SamplingWithASeedRepeats) {
  const fs::path model = golden("mha_plain") / "model";
  const std::string args =
      model_arg(model) + "--prompt_ids '4 8 15' --max_new_tokens 20 --print_ids --temperature 1.5";
  const auto first = test::run_llama_lora(args + " --seed 5");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, test::run_llama_lora(args + " --seed 5").out);
  EXPECT_NE(first.out, test::run_llama_lora(args + " --seed 6").out);
}

class GenerateCliTextModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const auto result =
        test::run_llama_lora("init --preset tiny -o " + shell_quote((*dir_ / "tiny").string()));
    ASSERT_EQ(result.exit_code, 0) << result.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static fs::path model() { return *dir_ / "tiny"; }
  static test::TempDir* dir_;
};
test::TempDir* GenerateCliTextModel::dir_ = nullptr;

TEST_F(GenerateCliTextModel, PromptIsTokenisedWithThePostProcessor) {
  const Tokenizer tokenizer = Tokenizer::load(model());
  const auto prompt = tokenizer.encode("SELECT name FROM users", AddSpecialTokens::Yes);
  ASSERT_TRUE(tokenizer.bos_id().has_value());
  ASSERT_EQ(prompt.front(), *tokenizer.bos_id());
  const auto ids = expected_ids(model(), {}, {prompt}, 7)[0];

  auto result = test::run_llama_lora(model_arg(model()) +
                                     "--prompt 'SELECT name FROM users' --max_new_tokens 7 "
                                     "--print_ids");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, ids_line(ids));

  // Text output: the same tokens decoded, special tokens dropped.
  result = test::run_llama_lora(model_arg(model()) +
                                "--prompt 'SELECT name FROM users' --max_new_tokens 7");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, tokenizer.decode(ids, DecodeSpecial::Skip) + "\n");
}

TEST_F(GenerateCliTextModel, MessagesAreRenderedWithTheChatTemplate) {
  const Tokenizer tokenizer = Tokenizer::load(model());
  const ChatTemplate chat_template = ChatTemplate::load(model());
  const std::vector<ChatMessage> messages = {{"system", "You write SQL."},
                                             {"user", "List the users."}};
  const std::string text = chat_template.render(messages, GenerationPrompt::Add);
  const auto prompt = tokenizer.encode(text, AddSpecialTokens::No);
  const auto ids = expected_ids(model(), {}, {prompt}, 6)[0];

  const std::string json = R"([{"role": "system", "content": "You write SQL."},)"
                           R"( {"role": "user", "content": "List the users."}])";
  const auto result = test::run_llama_lora(model_arg(model()) + "--messages " + shell_quote(json) +
                                           " --max_new_tokens 6 --print_ids");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, ids_line(ids));
}

TEST_F(GenerateCliTextModel, BadInputGivesOneLineErrors) {
  expect_one_line_error(
      test::run_llama_lora("generate --model /nonexistent/model --prompt_ids '1 2'"),
      "/nonexistent/model");
  expect_one_line_error(test::run_llama_lora(model_arg(model()) + "--prompt_ids '1 x 3'"),
                        "'x' is not a token id");
  expect_one_line_error(test::run_llama_lora(model_arg(model()) + "--prompt_ids '1 -2'"),
                        "is not a token id");
  expect_one_line_error(
      test::run_llama_lora(model_arg(model()) + "--prompt_ids '1 99999' --print_ids"),
      "outside the vocabulary");
  expect_one_line_error(
      test::run_llama_lora(model_arg(model()) + "--messages '{\"role\": \"user\"}'"),
      "expected a JSON list");
  expect_one_line_error(test::run_llama_lora(model_arg(model()) + "--messages 'not json'"),
                        "expected a JSON list");
  expect_one_line_error(test::run_llama_lora(model_arg(model()) + "--prompt hi --max_new_tokens 0"),
                        "--max_new_tokens must be >= 1");
  expect_one_line_error(test::run_llama_lora(model_arg(model()) + "--max_new_tokens 3"),
                        "exactly one way");
  expect_one_line_error(test::run_llama_lora(model_arg(model()) + "--prompt hi --temperature 0"),
                        "temperature must be > 0");
  expect_one_line_error(
      test::run_llama_lora(model_arg(golden("gqa_tied") / "model") + "--prompt_ids '1 2'"),
      "add --print_ids");
}

}  // namespace
}  // namespace ll
