// Tests of Tokenizer on a tiny GPT-2-style tokenizer.json built here: 256 byte tokens, nine
// merges, a vocab-only token, added tokens and a BOS/EOS template. Every expected encoding
// was checked against Hugging Face `tokenizers` 0.23.3 loading the same JSON (offsets there
// are in characters; here in bytes, which differ only inside "é").
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

namespace ll {
namespace {

using Ids = std::vector<int32_t>;
using Offsets = std::vector<std::pair<uint32_t, uint32_t>>;

// Byte b has id b; merge k makes id 256 + k; "abc" (265) is in the vocab but no merge makes
// it, so only ignore_merges can produce it. Added: <|end|> 266 (special), <|e 267 (not
// special), <s> 268 and </s> 269 (special, the template's BOS/EOS).
nlohmann::json tiny_tokenizer_json(bool ignore_merges, bool add_prefix_space = false) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) {
    vocab[byte_level::encode(std::string(1, static_cast<char>(b)))] = b;
  }
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"l", "l"},     {"Ġ", "h"},   {"e", "ll"},   {"h", "e"}, {"Ġh", "ell"},
      {"Ġhell", "o"}, {"he", "ll"}, {"hell", "o"}, {"a", "b"}};
  nlohmann::json merge_list = nlohmann::json::array();
  for (size_t k = 0; k < merges.size(); ++k) {
    vocab[merges[k].first + merges[k].second] = 256 + static_cast<int>(k);
    merge_list.push_back(merges[k].first + " " + merges[k].second);
  }
  vocab["abc"] = 265;
  const auto added = [](int id, const char* content, bool special) {
    return nlohmann::json{{"id", id},          {"content", content}, {"single_word", false},
                          {"lstrip", false},   {"rstrip", false},    {"normalized", false},
                          {"special", special}};
  };
  const auto special_token = [](const char* name) {
    return nlohmann::json{{"SpecialToken", {{"id", name}, {"type_id", 0}}}};
  };
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       {added(266, "<|end|>", true), added(267, "<|e", false), added(268, "<s>", true),
        added(269, "</s>", true)}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"},
        {"add_prefix_space", add_prefix_space},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {special_token("<s>"),
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          special_token("</s>")}},
        {"pair", nlohmann::json::array()},
        {"special_tokens",
         {{"<s>", {{"id", "<s>"}, {"ids", {268}}, {"tokens", {"<s>"}}}},
          {"</s>", {{"id", "</s>"}, {"ids", {269}}, {"tokens", {"</s>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", ignore_merges},
        {"vocab", vocab},
        {"merges", merge_list}}},
  };
}

Ids encode(const Tokenizer& tokenizer, std::string_view text) {
  return tokenizer.encode(text, AddSpecialTokens::No);
}

TEST(TinyTokenizer, MergesApplyByRankNotLeftToRight) {
  const Tokenizer tokenizer = Tokenizer::from_json(tiny_tokenizer_json(false), "tiny.json");
  // h e l l o: "l l" (rank 0) first, then "e ll" (rank 2) beats "h e" (rank 3), and then no
  // merge joins h + ell + o: [h, ell, o].
  EXPECT_EQ(encode(tokenizer, "hello"), (Ids{104, 258, 111}));
  // Ġ h e l l o: ll, Ġh, ell, Ġhell, Ġhello.
  EXPECT_EQ(encode(tokenizer, " hello"), (Ids{261}));
  EXPECT_EQ(encode(tokenizer, "hello hello"), (Ids{104, 258, 111, 261}));
  EXPECT_EQ(encode(tokenizer, "abc"), (Ids{264, 99}));
  // The GPT-2 regex: "it" "'s" " " "42" with the space joined to the number (" ?\p{N}+"),
  // "!", "\n\n".
  EXPECT_EQ(encode(tokenizer, "it's 42!\n\n"), (Ids{105, 116, 39, 115, 32, 52, 50, 33, 10, 10}));
  EXPECT_EQ(encode(tokenizer, "h\xC3\xA9llo"), (Ids{104, 195, 169, 256, 111}));  // héllo
  EXPECT_EQ(encode(tokenizer, ""), Ids{});
}

TEST(TinyTokenizer, IgnoreMergesTakesWholeVocabWords) {
  const Tokenizer tokenizer = Tokenizer::from_json(tiny_tokenizer_json(true), "tiny.json");
  EXPECT_EQ(encode(tokenizer, "hello"), (Ids{263}));  // "hello" is in the vocab
  EXPECT_EQ(encode(tokenizer, "abc"), (Ids{265}));    // no merge reaches it, the vocab has it
  EXPECT_EQ(encode(tokenizer, " abc"), (Ids{32, 264, 99}));  // " abc" is not in the vocab
  EXPECT_EQ(encode(tokenizer, "hello hello"), (Ids{263, 261}));
}

TEST(TinyTokenizer, AddedTokensMatchFirstLongestAndNeverSplit) {
  const Tokenizer tokenizer = Tokenizer::from_json(tiny_tokenizer_json(false), "tiny.json");
  // At byte 0 only "<|e" matches; at byte 3 "<|end|>" is longer than "<|e".
  EXPECT_EQ(encode(tokenizer, "<|e<|end|>"), (Ids{267, 266}));
  const Encoding encoding =
      tokenizer.encode_with_offsets("hello hello<|end|>", AddSpecialTokens::No);
  EXPECT_EQ(encoding.ids, (Ids{104, 258, 111, 261, 266}));
  EXPECT_EQ(encoding.offsets, (Offsets{{0, 1}, {1, 4}, {4, 5}, {5, 11}, {11, 18}}));
}

TEST(TinyTokenizer, TemplateAddsBosAndEos) {
  const Tokenizer tokenizer = Tokenizer::from_json(tiny_tokenizer_json(true), "tiny.json");
  const Encoding encoding = tokenizer.encode_with_offsets("hello", AddSpecialTokens::Yes);
  EXPECT_EQ(encoding.ids, (Ids{268, 263, 269}));
  EXPECT_EQ(encoding.offsets, (Offsets{{0, 0}, {0, 5}, {0, 0}}));
  EXPECT_EQ(tokenizer.bos_id(), 268);
  EXPECT_EQ(tokenizer.encode("", AddSpecialTokens::Yes), (Ids{268, 269}));
}

TEST(TinyTokenizer, OffsetsAreBytesInsideACharacter) {
  const Tokenizer tokenizer = Tokenizer::from_json(tiny_tokenizer_json(false), "tiny.json");
  const Encoding encoding = tokenizer.encode_with_offsets("h\xC3\xA9llo", AddSpecialTokens::No);
  // tokenizers gives both halves of "é" its whole character; we give each its own byte.
  EXPECT_EQ(encoding.offsets, (Offsets{{0, 1}, {1, 2}, {2, 3}, {3, 5}, {5, 6}}));
}

TEST(TinyTokenizer, PrefixSpaceIsVirtual) {
  const Tokenizer tokenizer =
      Tokenizer::from_json(tiny_tokenizer_json(false, /*add_prefix_space=*/true), "tiny.json");
  EXPECT_EQ(encode(tokenizer, "hello"), (Ids{261}));  // encoded as " hello"
  EXPECT_EQ(encode(tokenizer, "hello hello"), (Ids{261, 261}));
  EXPECT_EQ(encode(tokenizer, "  hello"), (Ids{32, 261}));  // starts with a space: none added
  const Encoding encoding = tokenizer.encode_with_offsets("hello", AddSpecialTokens::No);
  EXPECT_EQ(encoding.offsets, (Offsets{{0, 5}}));  // the added space covers no input byte
  // Decoding gives what was encoded, the added space included (as tokenizers does).
  EXPECT_EQ(tokenizer.decode(encoding.ids, DecodeSpecial::Keep), " hello");
}

TEST(TinyTokenizer, DecodeKeepsOrSkipsSpecialTokens) {
  const Tokenizer tokenizer = Tokenizer::from_json(tiny_tokenizer_json(false), "tiny.json");
  const Ids ids = {268, 104, 258, 111, 267, 266, 269};
  EXPECT_EQ(tokenizer.decode(ids, DecodeSpecial::Keep), "<s>hello<|e<|end|></s>");
  EXPECT_EQ(tokenizer.decode(ids, DecodeSpecial::Skip), "hello<|e");  // <|e is not special
  EXPECT_TRUE(tokenizer.is_special(266));
  EXPECT_FALSE(tokenizer.is_special(267));
  EXPECT_FALSE(tokenizer.is_special(104));
}

TEST(TinyTokenizer, DecodeRepairsSplitCharactersLikeTokenizers) {
  const Tokenizer tokenizer = Tokenizer::from_json(tiny_tokenizer_json(false), "tiny.json");
  // 0xC3 alone is an incomplete sequence: one U+FFFD. The raw bytes stay available.
  EXPECT_EQ(tokenizer.decode(Ids{104, 195}, DecodeSpecial::Keep), "h\xEF\xBF\xBD");
  EXPECT_EQ(tokenizer.decode_bytes(Ids{104, 195}, DecodeSpecial::Keep), "h\xC3");
  EXPECT_EQ(tokenizer.decode(Ids{195, 169}, DecodeSpecial::Keep), "\xC3\xA9");
}

TEST(TinyTokenizer, UnknownIdsAreErrors) {
  const Tokenizer tokenizer = Tokenizer::from_json(tiny_tokenizer_json(false), "tiny.json");
  EXPECT_THROW(tokenizer.decode(Ids{104, 270}, DecodeSpecial::Keep), Error);
  EXPECT_THROW(tokenizer.decode(Ids{-1}, DecodeSpecial::Skip), Error);
  EXPECT_THROW(tokenizer.id_to_token(5000), Error);
  try {
    tokenizer.decode(Ids{270}, DecodeSpecial::Keep);
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("270"), std::string::npos) << error.what();
  }
}

TEST(TinyTokenizer, VocabularyLookups) {
  const Tokenizer tokenizer = Tokenizer::from_json(tiny_tokenizer_json(false), "tiny.json");
  EXPECT_EQ(tokenizer.vocab_size(), 270);
  EXPECT_EQ(tokenizer.token_to_id("Ġhello"), 261);
  EXPECT_EQ(tokenizer.token_to_id("<|end|>"), 266);
  EXPECT_EQ(tokenizer.token_to_id("nope"), std::nullopt);
  EXPECT_EQ(tokenizer.id_to_token(32), "Ġ");
  EXPECT_EQ(tokenizer.id_to_token(269), "</s>");
}

TEST(TinyTokenizer, InvalidUtf8IsEncodedByteForByte) {
  const Tokenizer tokenizer = Tokenizer::from_json(tiny_tokenizer_json(false), "tiny.json");
  // A stray continuation byte, an overlong form, a lone lead byte at the end: each run of
  // invalid bytes becomes a piece of its own; nothing is dropped.
  const std::string text = "ab\x80\xC0\xAF hello\xFF\xE2\x82";
  const Encoding encoding = tokenizer.encode_with_offsets(text, AddSpecialTokens::No);
  EXPECT_EQ(tokenizer.decode_bytes(encoding.ids, DecodeSpecial::Keep), text);
  ASSERT_FALSE(encoding.offsets.empty());
  EXPECT_EQ(encoding.offsets.back().second, text.size());
  EXPECT_EQ(encode(tokenizer, "\xFF"), (Ids{255}));
}

}  // namespace
}  // namespace ll
