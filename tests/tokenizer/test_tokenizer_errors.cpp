// Tests that malformed or unsupported tokenizer.json files fail with an ll::Error that names
// the file and the field, never with a crash, a bare JSON exception, or a silently different
// encoding.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

namespace ll {
namespace {

// A small valid byte-level BPE tokenizer.json: 256 byte tokens, one merge, one special token.
nlohmann::json minimal_json() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level::encode(std::string(1, static_cast<char>(b)))] = b;
  vocab["ab"] = 256;
  return {
      {"added_tokens",
       {{{"id", 257}, {"content", "<|end|>"}, {"special", true}, {"normalized", false}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b"}}}},
  };
}

// Expects from_json on the edited minimal JSON to throw an ll::Error whose message holds
// the file name and `expected`.
void expect_error(const std::function<void(nlohmann::json&)>& edit, const std::string& expected) {
  nlohmann::json json = minimal_json();
  edit(json);
  try {
    Tokenizer::from_json(json, "bad/tokenizer.json");
    ADD_FAILURE() << "no error; expected: " << expected;
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_EQ(error.origin(), "tokenizer");
    EXPECT_NE(message.find("bad/tokenizer.json"), std::string::npos) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
}

TEST(TokenizerErrors, MinimalJsonIsValid) {
  const Tokenizer tokenizer = Tokenizer::from_json(minimal_json(), "ok.json");
  EXPECT_EQ(tokenizer.encode("ab<|end|>", AddSpecialTokens::No), (std::vector<int32_t>{256, 257}));
}

TEST(TokenizerErrors, MissingOrMistypedFields) {
  expect_error([](auto& j) { j.erase("model"); }, "model is missing");
  expect_error([](auto& j) { j["model"].erase("vocab"); }, "model.vocab is missing");
  expect_error([](auto& j) { j["model"]["vocab"] = nlohmann::json::array(); },
               "model.vocab must be an object, not array");
  expect_error([](auto& j) { j["model"]["vocab"]["x"] = "7"; }, "model.vocab['x'] must be an id");
  expect_error([](auto& j) { j["model"]["vocab"]["x"] = -3; }, "model.vocab['x'] must be an id");
  expect_error([](auto& j) { j["model"]["vocab"]["x"] = 1 << 30; }, "must be an id in 0..");
  expect_error([](auto& j) { j["model"]["vocab"]["x"] = 5; }, "gives id 5 to both");
  expect_error([](auto& j) { j["model"]["merges"] = "a b"; },
               "model.merges must be an array, not string");
  expect_error([](auto& j) { j["model"]["merges"] = {42}; }, "model.merges[0] must be a string");
  expect_error([](auto& j) { j["model"]["merges"] = {"ab"}; }, "model.merges[0] must be a string");
  expect_error([](auto& j) { j["model"]["ignore_merges"] = "yes"; },
               "model.ignore_merges must be true or false, not string");
  expect_error([](auto& j) { j["added_tokens"][0]["content"] = 5; },
               "added_tokens[0].content must be a string, not number");
  expect_error([](auto& j) { j["added_tokens"][0].erase("id"); }, "added_tokens[0].id is missing");
  expect_error([](auto& j) { j["pre_tokenizer"].erase("type"); }, "pre_tokenizer.type is missing");
  expect_error([](auto& j) { j = nlohmann::json::array(); }, "top level must be a JSON object");
}

TEST(TokenizerErrors, MergesMustReferToVocabTokens) {
  expect_error([](auto& j) { j["model"]["merges"].push_back("a zz"); },
               "model.merges[1] refers to 'zz', which is not in the vocab");
  // The merged token must be in the vocab too ("b" + "c" = "bc" is not).
  expect_error(
      [](auto& j) {
        j["model"]["merges"].push_back(nlohmann::json{"b", "c"});
      },
      "model.merges[1] refers to 'bc'");
}

TEST(TokenizerErrors, AddedTokensMustAgreeWithTheVocab) {
  expect_error(
      [](auto& j) {
        j["added_tokens"].push_back({{"id", 300}, {"content", "ab"}, {"special", false}});
      },
      "gives 'ab' id 300 but the vocab has it as 256");
  expect_error(
      [](auto& j) {
        j["added_tokens"].push_back({{"id", 256}, {"content", "<x>"}, {"special", true}});
      },
      "gives id 256 to '<x>' but the vocab has 'ab' there");
  expect_error(
      [](auto& j) {
        j["added_tokens"].push_back({{"id", 257}, {"content", "<y>"}, {"special", true}});
      },
      "repeats id 257");
}

TEST(TokenizerErrors, UnsupportedComponentsAreNamed) {
  expect_error(
      [](auto& j) {
        j["pre_tokenizer"] = {{"type", "Metaspace"}};
      },
      "pre_tokenizer type 'Metaspace' is not supported");
  expect_error([](auto& j) { j["pre_tokenizer"] = nullptr; },
               "pre_tokenizer null is not supported");
  expect_error(
      [](auto& j) {
        j["pre_tokenizer"] = {{"type", "Sequence"},
                              {"pretokenizers", {{{"type", "Digits"}}, j["pre_tokenizer"]}}};
      },
      "pre_tokenizer.pretokenizers[0] type 'Digits' is not supported");
  expect_error(
      [](auto& j) {
        j["pre_tokenizer"] = {{"type", "Sequence"},
                              {"pretokenizers",
                               {{{"type", "Split"},
                                 {"pattern", {{"Regex", "\\s+"}}},
                                 {"behavior", "Removed"},
                                 {"invert", false}}}}};
      },
      "behavior 'Removed' is not supported");
  expect_error(
      [](auto& j) {
        j["pre_tokenizer"] = {{"type", "Sequence"},
                              {"pretokenizers",
                               {{{"type", "Split"},
                                 {"pattern", {{"Regex", "\\s+"}}},
                                 {"behavior", "Isolated"},
                                 {"invert", false}}}}};
      },
      "has no ByteLevel step");
  expect_error(
      [](auto& j) {
        j["pre_tokenizer"] = {{"type", "Sequence"},
                              {"pretokenizers",
                               {{{"type", "Split"},
                                 {"pattern", {{"Regex", "(unclosed"}}},
                                 {"behavior", "Isolated"},
                                 {"invert", false}},
                                j["pre_tokenizer"]}}};
      },
      "regex '(unclosed' does not compile");
  expect_error(
      [](auto& j) {
        j["normalizer"] = {{"type", "NFC"}};
      },
      "normalizer type 'NFC' is not supported");
  expect_error([](auto& j) { j["model"]["type"] = "WordPiece"; },
               "model type 'WordPiece' is not supported");
  expect_error([](auto& j) { j["model"]["dropout"] = 0.1; }, "model.dropout other than null");
  expect_error([](auto& j) { j["model"]["byte_fallback"] = true; }, "model.byte_fallback true");
  expect_error([](auto& j) { j["model"]["continuing_subword_prefix"] = "##"; },
               "model.continuing_subword_prefix is not supported");
  expect_error(
      [](auto& j) {
        j["decoder"] = {{"type", "Metaspace"}};
      },
      "decoder type 'Metaspace' is not supported");
  expect_error([](auto& j) { j["decoder"] = nullptr; }, "decoder null is not supported");
  expect_error(
      [](auto& j) {
        j["post_processor"] = {{"type", "BertProcessing"}};
      },
      "post_processor type 'BertProcessing' is not supported");
  expect_error(
      [](auto& j) {
        j["post_processor"] = {{"type", "TemplateProcessing"},
                               {"single", {{{"Sequence", {{"id", "B"}, {"type_id", 0}}}}}},
                               {"special_tokens", nlohmann::json::object()}};
      },
      "refers to sequence 'B'");
  expect_error(
      [](auto& j) {
        j["post_processor"] = {{"type", "TemplateProcessing"},
                               {"single",
                                {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                               {"special_tokens", nlohmann::json::object()}};
      },
      "names '<s>', which special_tokens does not define");
  expect_error(
      [](auto& j) {
        j["post_processor"] = {
            {"type", "TemplateProcessing"},
            {"single",
             {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {999}}, {"tokens", {"<s>"}}}}}}};
      },
      "post_processor adds id 999");
}

TEST(TokenizerErrors, LoadNamesTheFile) {
  test::TempDir dir;
  try {
    Tokenizer::load(dir.path());
    ADD_FAILURE() << "loaded an empty folder";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("tokenizer.json: not found"), std::string::npos)
        << error.what();
  }
  test::write_text(dir / "tokenizer.json", "{\"model\": ");
  try {
    Tokenizer::load(dir.path());
    ADD_FAILURE() << "loaded truncated JSON";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find((dir / "tokenizer.json").string()), std::string::npos) << message;
    EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
  }
  test::write_text(dir / "tokenizer.json", minimal_json().dump());
  EXPECT_EQ(Tokenizer::load(dir.path()).vocab_size(), 258);
  EXPECT_EQ(Tokenizer::load(dir / "tokenizer.json").vocab_size(), 258);
}

}  // namespace
}  // namespace ll
