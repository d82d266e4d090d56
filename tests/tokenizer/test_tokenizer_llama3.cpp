// Tests of Tokenizer on the real Meta Llama-3 tokenizer.json (../shared/data/llama3-tokenizer):
// every published test vector in vectors.jsonl (from llama3-tokenizer-js), a few more
// encodings checked against Hugging Face `tokenizers` 0.23.3 on the same file, decode
// round trips, offsets, and concurrent use. Skips visibly when the shared data is absent.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace ll {
namespace {

using Ids = std::vector<int32_t>;

std::filesystem::path llama3_dir() {
  return test::shared_data() / "llama3-tokenizer";
}

// The vectors were made with Llama-3.1's tokenizer, which differs from this (Llama-3.0) file
// in two ways that tokenizers (checked) would also see:
//  - three special tokens were renamed: 128004 <|reserved_special_token_2|> ->
//    <|finetune_right_pad_id|>, 128008 <|reserved_special_token_4|> -> <|eom_id|>, 128010
//    <|reserved_special_token_5|> -> <|python_tag|>;
//  - the post-processor became Sequence[ByteLevel, TemplateProcessing with
//    <|begin_of_text|> before $A] (Meta's May 2024 update), so BOS is added; this file's
//    plain ByteLevel adds nothing.
// as_llama31() applies exactly these changes, so every vector line is checked against this
// folder's vocab and merges, and ShippedFileDiffersOnlyThere pins what the file itself does.
nlohmann::json as_llama31(nlohmann::json json) {
  const std::map<int, std::string> renamed = {
      {128004, "<|finetune_right_pad_id|>"}, {128008, "<|eom_id|>"}, {128010, "<|python_tag|>"}};
  for (nlohmann::json& token : json["added_tokens"]) {
    const auto it = renamed.find(token["id"].get<int>());
    if (it != renamed.end()) token["content"] = it->second;
  }
  json["post_processor"] = {{"type", "Sequence"},
                            {"processors",
                             {json["post_processor"],
                              {{"type", "TemplateProcessing"},
                               {"single",
                                {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                               {"pair", nlohmann::json::array()},
                               {"special_tokens",
                                {{"<|begin_of_text|>",
                                  {{"id", "<|begin_of_text|>"},
                                   {"ids", {128000}},
                                   {"tokens", {"<|begin_of_text|>"}}}}}}}}}};
  return json;
}

// The 9 MB file is parsed once for the whole suite.
class Llama3Tokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto path = llama3_dir() / "tokenizer.json";
    if (!std::filesystem::exists(path)) return;
    const nlohmann::json json = nlohmann::json::parse(read_file(path));
    shipped_ = std::make_unique<Tokenizer>(Tokenizer::from_json(json, path.string()));
    llama31_ = std::make_unique<Tokenizer>(Tokenizer::from_json(as_llama31(json), "llama31"));
  }
  static void TearDownTestSuite() {
    shipped_.reset();
    llama31_.reset();
  }
  void SetUp() override { LL_REQUIRE_SHARED(llama3_dir() / "tokenizer.json"); }
  static const Tokenizer& tokenizer() { return *shipped_; }
  static const Tokenizer& llama31() { return *llama31_; }

  static std::unique_ptr<Tokenizer> shipped_;
  static std::unique_ptr<Tokenizer> llama31_;
};

std::unique_ptr<Tokenizer> Llama3Tokenizer::shipped_;
std::unique_ptr<Tokenizer> Llama3Tokenizer::llama31_;

std::vector<nlohmann::json> read_vectors() {
  std::vector<nlohmann::json> vectors;
  std::ifstream in(llama3_dir() / "vectors.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) vectors.push_back(nlohmann::json::parse(line));
  }
  return vectors;
}

TEST_F(Llama3Tokenizer, EveryPublishedVectorEncodesAndDecodes) {
  const std::vector<nlohmann::json> vectors = read_vectors();
  ASSERT_EQ(vectors.size(), 22u);
  int checked = 0;
  for (const nlohmann::json& vector : vectors) {
    const std::string text = vector.at("text").get<std::string>();
    SCOPED_TRACE(text.substr(0, 80));
    if (vector.contains("decode_ids")) {
      EXPECT_EQ(llama31().decode(vector.at("decode_ids").get<Ids>(), DecodeSpecial::Keep), text);
      ++checked;
      continue;
    }
    const Ids expected = vector.at("ids").get<Ids>();
    const auto add =
        vector.at("add_special_tokens").get<bool>() ? AddSpecialTokens::Yes : AddSpecialTokens::No;
    EXPECT_EQ(llama31().encode(text, add), expected);
    // The BOS the post-processor added is not in the text: skip it when comparing.
    const auto special = add == AddSpecialTokens::Yes ? DecodeSpecial::Skip : DecodeSpecial::Keep;
    EXPECT_EQ(llama31().decode(expected, special), text);
    ++checked;
  }
  EXPECT_EQ(checked, 22);
}

TEST_F(Llama3Tokenizer, ShippedFileDiffersOnlyThere) {
  EXPECT_EQ(tokenizer().bos_id(), std::nullopt);
  EXPECT_EQ(llama31().bos_id(), 128000);
  EXPECT_EQ(tokenizer().encode("I", AddSpecialTokens::Yes), (Ids{40}));
  EXPECT_EQ(tokenizer().decode(Ids{128004, 128008, 128010}, DecodeSpecial::Keep),
            "<|reserved_special_token_2|><|reserved_special_token_4|><|reserved_special_token_5|>");
  // Every vector that uses neither renamed token nor BOS gives the same ids with the file
  // as shipped.
  int same = 0;
  for (const nlohmann::json& vector : read_vectors()) {
    if (!vector.contains("ids") || vector.at("add_special_tokens").get<bool>()) continue;
    const std::string text = vector.at("text").get<std::string>();
    if (text.find("<|eom_id|>") != std::string::npos) continue;
    EXPECT_EQ(tokenizer().encode(text, AddSpecialTokens::No), vector.at("ids").get<Ids>());
    ++same;
  }
  EXPECT_EQ(same, 14);
  const Encoding encoding = llama31().encode_with_offsets("I", AddSpecialTokens::Yes);
  EXPECT_EQ(encoding.ids, (Ids{128000, 40}));
  EXPECT_EQ(encoding.offsets, (std::vector<std::pair<uint32_t, uint32_t>>{{0, 0}, {0, 1}}));
}

TEST_F(Llama3Tokenizer, MatchesHuggingFaceTokenizers) {
  // Ids from tokenizers 0.23.3 (Tokenizer.from_file(...).encode(text, add_special_tokens=False)).
  const std::vector<std::pair<std::string, Ids>> cases = {
      {"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHow many heads are older "
       "than 56?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nSELECT COUNT(*) FROM "
       "head WHERE age > 56<|eot_id|>",
       {128000, 128006, 882,  128007, 271,    4438,   1690,  14971,  527,  9191,
        1109,   220,    3487, 30,     128009, 128006, 78191, 128007, 271,  4963,
        24945,  29771,  4393, 2010,   5401,   4325,   871,   220,    3487, 128009}},
      {"x = 1234567.89  # a\u00f1o, na\u00efve caf\u00e9\r\n\tdef f():\n        return None",
       {87, 284,   220, 4513,  10961, 22,   13,  4578, 220, 674, 36916,
        11, 95980, 588, 53050, 319,   7604, 282, 4019, 286, 471, 2290}},
      {"\u00dcn\u00efc\u00f6d\u00e9  \u00a0 \u3000 \u4e2d\u6587 \u65e5\u672c\u8a9e "
       "\ud55c\uad6d\uc5b4 \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
       {53591, 77, 38672, 66, 3029, 67, 978, 256, 4194, 100267, 73958, 17161, 105180, 102158,
        104008, 32179, 110356}},
      {"I'M SURE it's   THEY'LL", {40, 28703, 328, 4622, 433, 596, 256, 63593, 6, 4178}},
      {"<|eot_id|", {27, 91, 68, 354, 851, 91}},  // not a special token without its '>'
      // U+180E is not White_Space for tokenizers' regex engine (PCRE2's \s would say it is).
      {"\u180e\u180e a", {157, 254, 236, 157, 254, 236, 264}},
  };
  for (const auto& [text, ids] : cases) {
    EXPECT_EQ(tokenizer().encode(text, AddSpecialTokens::No), ids) << text;
    EXPECT_EQ(tokenizer().decode(ids, DecodeSpecial::Keep), text);
  }
}

TEST_F(Llama3Tokenizer, SpecialTokens) {
  EXPECT_EQ(tokenizer().vocab_size(), 128256);
  EXPECT_EQ(tokenizer().token_to_id("<|eot_id|>"), 128009);
  EXPECT_EQ(tokenizer().token_to_id("Ġworld"), 1917);
  EXPECT_EQ(tokenizer().id_to_token(128000), "<|begin_of_text|>");
  EXPECT_EQ(tokenizer().id_to_token(1917), "Ġworld");
  EXPECT_TRUE(tokenizer().is_special(128009));
  EXPECT_FALSE(tokenizer().is_special(1917));
  const Ids ids = tokenizer().encode("<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
                                     AddSpecialTokens::No);
  EXPECT_EQ(tokenizer().decode(ids, DecodeSpecial::Skip), "user\n\nhi");
}

TEST_F(Llama3Tokenizer, OffsetsCoverTheInputInOrder) {
  const std::string text =
      "The llama (/\xCB\x88l\xC9\x91\xCB\x90m\xC9\x99/; \xF0\x9F\xA6\x99Spanish) <|eot_id|> "
      "costs 1234567 \xE2\x82\xAC\n\n  end";
  const Encoding encoding = tokenizer().encode_with_offsets(text, AddSpecialTokens::No);
  ASSERT_EQ(encoding.ids.size(), encoding.offsets.size());
  ASSERT_EQ(encoding.ids, tokenizer().encode(text, AddSpecialTokens::No));
  // No trimming in Llama-3's post-processor: the ranges tile the text exactly, and each
  // token's bytes are the bytes of its range.
  uint32_t expected_begin = 0;
  for (size_t i = 0; i < encoding.ids.size(); ++i) {
    const auto [begin, end] = encoding.offsets[i];
    EXPECT_EQ(begin, expected_begin) << i;
    EXPECT_LT(begin, end) << i;
    const int32_t id[] = {encoding.ids[i]};
    EXPECT_EQ(tokenizer().decode_bytes(id, DecodeSpecial::Keep), text.substr(begin, end - begin));
    expected_begin = end;
  }
  EXPECT_EQ(expected_begin, text.size());
}

TEST_F(Llama3Tokenizer, InvalidUtf8DoesNotCrashAndKeepsItsBytes) {
  const std::vector<std::string> inputs = {
      "\xFF",
      "abc\x80"
      "def",
      "caf\xE9 au lait",
      "\xF0\x9F\xA6",
      "\xED\xA0\x80 surrogate",
      std::string("nul\0inside", 10),
      "\xC0\xAF overlong",
      "ok \xF4\x90\x80\x80 too big",
  };
  for (const std::string& text : inputs) {
    const Encoding encoding = tokenizer().encode_with_offsets(text, AddSpecialTokens::No);
    EXPECT_EQ(tokenizer().decode_bytes(encoding.ids, DecodeSpecial::Keep), text);
    EXPECT_EQ(encoding.offsets.back().second, text.size());
  }
  // Valid text around an invalid byte encodes as it would alone.
  EXPECT_EQ(tokenizer().encode("caf\xE9 au lait", AddSpecialTokens::No).back(),
            tokenizer().encode(" lait", AddSpecialTokens::No).back());
  // decode() replaces what is not UTF-8, one U+FFFD per maximal invalid subpart.
  const Ids ids = tokenizer().encode("a\xF0\x9F\xA6z", AddSpecialTokens::No);
  EXPECT_EQ(tokenizer().decode(ids, DecodeSpecial::Keep), "a\xEF\xBF\xBDz");
}

TEST_F(Llama3Tokenizer, LongRunsStayLinear) {
  // Long words take the heap merge path; long whitespace runs stress the regex.
  const std::string letters(100000, 'x');
  const std::string spaces = std::string(200000, ' ') + "x";
  const std::string digits(30000, '7');
  for (const std::string* text : {&letters, &spaces, &digits}) {
    const Ids ids = tokenizer().encode(*text, AddSpecialTokens::No);
    EXPECT_EQ(tokenizer().decode(ids, DecodeSpecial::Keep), *text);
  }
  EXPECT_EQ(tokenizer().encode(digits, AddSpecialTokens::No).size(), 10000u);  // \p{N}{1,3}
}

TEST_F(Llama3Tokenizer, ConcurrentEncodingGivesTheSameIds) {
  // The word cache is shared between threads; results must not depend on interleaving.
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) {
    texts.push_back("row " + std::to_string(i * 7919) + ": SELECT name_" + std::to_string(i) +
                    " FROM t" + std::to_string(i % 13) + " WHERE x" + std::string(i % 5, 'z'));
  }
  std::vector<Ids> expected;
  for (const std::string& text : texts)
    expected.push_back(tokenizer().encode(text, AddSpecialTokens::No));
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          if (tokenizer().encode(texts[(i + t * 50) % texts.size()], AddSpecialTokens::No) !=
              expected[(i + t * 50) % texts.size()]) {
            ++failures[t];
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

TEST_F(Llama3Tokenizer, LoadsFromTheFileOrItsFolder) {
  const Tokenizer from_file = Tokenizer::load(llama3_dir() / "tokenizer.json");
  EXPECT_EQ(from_file.encode("grabbed", AddSpecialTokens::No), (Ids{59312, 2788}));
}

}  // namespace
}  // namespace ll
