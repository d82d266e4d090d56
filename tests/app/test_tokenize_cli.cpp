// `llama-lora tokenize` end to end: the three output formats on the Llama-3 tokenizer (ids as
// in the published vectors), --file input, --add_special_tokens with a tokenizer whose
// post-processor adds BOS, and the one-line errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace ll {
namespace {

using test::shell_quote;

const std::filesystem::path kLlama3Dir = test::shared_data() / "llama3-tokenizer";

std::string tokenize_args(const std::filesystem::path& tokenizer, const std::string& rest) {
  return "tokenize --tokenizer " + shell_quote(tokenizer.string()) + " " + rest;
}

// A byte-level tokenizer.json with one merge ("a b") and a template that adds <s> (id 257).
std::string bos_tokenizer_json() {
  nlohmann::json vocab = nlohmann::json::object();
  // bytes_to_unicode: printable bytes keep their value, the others move to U+0100 upwards.
  int next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool keeps = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const int code_point = keeps ? b : next++;
    std::string utf8;
    if (code_point < 0x80) {
      utf8 += static_cast<char>(code_point);
    } else {
      utf8 += static_cast<char>(0xC0 | (code_point >> 6));
      utf8 += static_cast<char>(0x80 | (code_point & 0x3F));
    }
    vocab[utf8] = b;
  }
  vocab["ab"] = 256;
  const nlohmann::json json = {
      {"added_tokens", {{{"id", 257}, {"content", "<s>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {257}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b"}}}},
  };
  return json.dump();
}

TEST(TokenizeCli, IdsOfThePublishedVectors) {
  LL_REQUIRE_SHARED(kLlama3Dir);
  auto result =
      test::run_llama_lora(tokenize_args(kLlama3Dir, "--text 'This is a test sentence.'"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "2028 374 264 1296 11914 13\n");
  // The tokenizer.json file itself works as well as its folder; special tokens in the text
  // are recognised.
  result = test::run_llama_lora(
      tokenize_args(kLlama3Dir / "tokenizer.json", "--text '<|eot_id|>           grabbed'"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "128009 1881 30418\n");
}

TEST(TokenizeCli, PiecesShowTextOrBytes) {
  LL_REQUIRE_SHARED(kLlama3Dir);
  const auto result = test::run_llama_lora(tokenize_args(
      kLlama3Dir, "--format pieces --text " + shell_quote("Hello world \xF0\x9F\xA6\x99\n")));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  // The llama emoji is three tokens, none a whole character: shown as bytes.
  EXPECT_EQ(result.out,
            "\"Hello\" \" world\" \"<0x20><0xF0><0x9F>\" \"<0xA6>\" \"<0x99>\" \"\\n\"\n");
}

TEST(TokenizeCli, JsonHasIdsTokensAndOffsets) {
  LL_REQUIRE_SHARED(kLlama3Dir);
  const auto result =
      test::run_llama_lora(tokenize_args(kLlama3Dir, "--format json --text ' grabbed\n'"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  ASSERT_EQ(result.out.back(), '\n');
  EXPECT_EQ(result.out.find('\n'), result.out.size() - 1);  // one line
  const nlohmann::json json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["ids"], (nlohmann::json{30418, 198}));
  EXPECT_EQ(json["tokens"], (nlohmann::json{"Ġgrabbed", "Ċ"}));
  EXPECT_EQ(json["offsets"], (nlohmann::json{{0, 8}, {8, 9}}));
}

TEST(TokenizeCli, FileInputAndSpecialTokens) {
  test::TempDir dir;
  test::write_text(dir / "tok" / "tokenizer.json", bos_tokenizer_json());
  test::write_text(dir / "in.txt", "abc\n");
  auto result = test::run_llama_lora(
      tokenize_args(dir / "tok", "--file " + shell_quote((dir / "in.txt").string())));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "256 99 10\n");
  result = test::run_llama_lora(tokenize_args(
      dir / "tok", "--add_special_tokens --file " + shell_quote((dir / "in.txt").string())));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "257 256 99 10\n");
}

TEST(TokenizeCli, ErrorsAreOneLine) {
  test::TempDir dir;
  auto result = test::run_llama_lora(tokenize_args(dir.path(), "--text hi"));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("tokenizer.json: not found"), std::string::npos) << result.err;
  EXPECT_EQ(result.out, "");

  test::write_text(dir / "tokenizer.json", bos_tokenizer_json());
  result = test::run_llama_lora(tokenize_args(dir.path(), ""));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("give --text or --file"), std::string::npos) << result.err;

  result = test::run_llama_lora(tokenize_args(dir.path(), "--text a --file b"));
  EXPECT_NE(result.exit_code, 0);

  result = test::run_llama_lora(tokenize_args(dir.path(), "--text a --format yaml"));
  EXPECT_NE(result.exit_code, 0);

  result = test::run_llama_lora(
      tokenize_args(dir.path(), "--file " + shell_quote((dir / "missing.txt").string())));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("missing.txt"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace ll
