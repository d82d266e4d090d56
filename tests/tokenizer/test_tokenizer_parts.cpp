// Tests of the tokenizer's parts: UTF-8 validation and lossy repair (against the examples of
// Rust's String::from_utf8_lossy and Unicode's maximal-subpart rule), GPT-2's byte-level
// alphabet, the pre-tokenizer regex splitting, and the two BPE merge strategies agreeing.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/file.h"
#include "test_util.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/utf8.h"

namespace ll {
namespace {

TEST(Utf8, ValidPrefix) {
  EXPECT_EQ(utf8::valid_prefix_length("plain ascii text, long enough for 8-byte steps"), 46u);
  EXPECT_EQ(utf8::valid_prefix_length("caf\xC3\xA9"), 5u);
  EXPECT_EQ(utf8::valid_prefix_length("ab\xC3"), 2u);            // truncated
  EXPECT_EQ(utf8::valid_prefix_length("ab\xC0\xAF"), 2u);        // overlong '/'
  EXPECT_EQ(utf8::valid_prefix_length("ab\xED\xA0\x80"), 2u);    // surrogate U+D800
  EXPECT_EQ(utf8::valid_prefix_length("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(utf8::valid_prefix_length("\xF0\x9F\xA6\x99"), 4u);  // U+1F999
  EXPECT_EQ(utf8::invalid_run_length("\x80\x81z", 0), 2u);
}

TEST(Utf8, LastSequenceLength) {
  EXPECT_EQ(utf8::last_sequence_length(""), 0u);
  EXPECT_EQ(utf8::last_sequence_length("ab"), 1u);
  EXPECT_EQ(utf8::last_sequence_length("caf\xC3\xA9"), 2u);
  EXPECT_EQ(utf8::last_sequence_length("\xE3\x80\x80"), 3u);       // U+3000
  EXPECT_EQ(utf8::last_sequence_length("x\xF0\x9F\xA6\x99"), 4u);  // U+1F999
  EXPECT_EQ(utf8::last_sequence_length("ab\xC3"), 0u);             // truncated
  EXPECT_EQ(utf8::last_sequence_length("\xE3\x80"), 0u);           // truncated
  EXPECT_EQ(utf8::last_sequence_length("a\xA9"), 0u);              // stray continuation byte
  EXPECT_EQ(utf8::last_sequence_length("\xE3\x80\x80\x80"), 0u);   // one continuation too many
  EXPECT_EQ(utf8::last_sequence_length("a\x80\x80\x80\x80"), 0u);  // no lead byte 4 back
  EXPECT_EQ(utf8::last_sequence_length("ab\xC0\xAF"), 0u);         // overlong '/'
  EXPECT_EQ(utf8::last_sequence_length("ab\xED\xA0\x80"), 0u);     // surrogate U+D800
  EXPECT_EQ(utf8::last_sequence_length("\xF4\x90\x80\x80"), 0u);   // above U+10FFFF

  // Walking a valid text backwards finds the code points that sequence_length finds forwards.
  std::mt19937 rng(7);
  const char32_t code_points[] = {U'a', 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF};
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    for (int i = 0; i < 12; ++i) utf8::append(text, code_points[rng() % std::size(code_points)]);
    std::vector<size_t> forward;
    for (size_t pos = 0; pos < text.size(); pos += forward.back()) {
      forward.push_back(utf8::sequence_length(text, pos));
      ASSERT_GT(forward.back(), 0u);
    }
    std::vector<size_t> backward;
    for (size_t end = text.size(); end > 0; end -= backward.back()) {
      backward.push_back(utf8::last_sequence_length(std::string_view(text).substr(0, end)));
      ASSERT_GT(backward.back(), 0u);
    }
    EXPECT_EQ(std::vector<size_t>(backward.rbegin(), backward.rend()), forward);
  }
}

TEST(Utf8, LossyRepairMatchesRust) {
  // The example in Rust's String::from_utf8_lossy documentation.
  EXPECT_EQ(utf8::repair_lossy("Hello \xF0\x90\x80World"), "Hello \xEF\xBF\xBDWorld");
  // Unicode 15 §3.9, Table 3-8: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64 gives
  // a, FFFD, FFFD, FFFD, b, FFFD, c, FFFD, FFFD, d.
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8::repair_lossy("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a" + r + r + r + "b" + r + "c" + r + r + "d");
  EXPECT_EQ(utf8::repair_lossy("\xE0\x80"), r + r);  // E0 needs A0..BF next
  EXPECT_EQ(utf8::repair_lossy("ok"), "ok");
}

TEST(ByteLevel, Gpt2Alphabet) {
  EXPECT_EQ(byte_level::byte_to_char(' '), U'\u0120');   // Ġ
  EXPECT_EQ(byte_level::byte_to_char('\n'), U'\u010A');  // Ċ
  EXPECT_EQ(byte_level::byte_to_char('A'), U'A');
  EXPECT_EQ(byte_level::byte_to_char(0xAD), U'\u0143');  // the last remapped byte
  EXPECT_EQ(byte_level::byte_to_char(0xFF), U'\u00FF');
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t c = byte_level::byte_to_char(static_cast<uint8_t>(b));
    EXPECT_TRUE(seen.insert(c).second) << b;
    EXPECT_EQ(byte_level::char_to_byte(c), b);
  }
  EXPECT_EQ(byte_level::char_to_byte(U' '), -1);  // a space is not in the alphabet
  EXPECT_EQ(byte_level::encode(" hi\n"), "\xC4\xA0hi\xC4\x8A");
  EXPECT_EQ(byte_level::decode("\xC4\xA0hi\xC4\x8A"), " hi\n");
  EXPECT_EQ(byte_level::decode("a b"), std::nullopt);
  EXPECT_EQ(byte_level::decode_token("a b"), "a b");  // left as is, as tokenizers does
}

std::vector<std::string> split_with(const PreTokenizer& pre_tokenizer, std::string_view text) {
  SplitScratch scratch;
  std::vector<Piece> pieces;
  pre_tokenizer.split(text, 0, static_cast<uint32_t>(text.size()), scratch, pieces);
  std::vector<std::string> out;
  for (const Piece& piece : pieces) {
    std::string shown(piece.prefix_space ? 1 : 0, ' ');
    shown.append(text.substr(piece.begin, piece.end - piece.begin));
    out.push_back(std::move(shown));
  }
  return out;
}

TEST(PreTokenizer, Gpt2Pattern) {
  PreTokenizer pre_tokenizer;
  pre_tokenizer.byte_level_regex.emplace(std::string(kGpt2Pattern), SplitRegex::Syntax::Regex,
                                         "test");
  EXPECT_EQ(split_with(pre_tokenizer, "Hello world, it's 2024!  ok\n"),
            (std::vector<std::string>{"Hello", " world", ",", " it", "'s", " 2024", "!", " ", " ok",
                                      "\n"}));
  pre_tokenizer.add_prefix_space = true;
  EXPECT_EQ(split_with(pre_tokenizer, "Hi\nyo"), (std::vector<std::string>{" Hi", "\n", "yo"}));
}

TEST(PreTokenizer, SplitStepsRunInOrderAndLiteralPatterns) {
  PreTokenizer pre_tokenizer;
  pre_tokenizer.splits.emplace_back("-", SplitRegex::Syntax::Literal, "test");
  pre_tokenizer.splits.emplace_back("\\s+", SplitRegex::Syntax::Regex, "test");
  EXPECT_EQ(split_with(pre_tokenizer, "a-b c--d"),
            (std::vector<std::string>{"a", "-", "b", " ", "c", "-", "-", "d"}));
  // Invalid UTF-8 never reaches the regex: it is a piece of its own.
  EXPECT_EQ(split_with(pre_tokenizer, "a \xFF\xFE b"),
            (std::vector<std::string>{"a", " ", "\xFF\xFE", " ", "b"}));
}

TEST(PreTokenizer, WhiteSpaceIsUnicodeWhiteSpaceOnly) {
  PreTokenizer pre_tokenizer;
  pre_tokenizer.splits.emplace_back("\\s+|[^\\s]+", SplitRegex::Syntax::Regex, "test");
  // U+3000 is White_Space; U+180E is not (since Unicode 6.3), as in Oniguruma.
  EXPECT_EQ(split_with(pre_tokenizer,
                       "a\xE3\x80\x80"
                       "b\xE1\xA0\x8E"
                       "c"),
            (std::vector<std::string>{"a", "\xE3\x80\x80",
                                      "b\xE1\xA0\x8E"
                                      "c"}));
}

TEST(BpeMerges, LinearScanAndHeapAgree) {
  const auto path = test::shared_data() / "llama3-tokenizer" / "tokenizer.json";
  LL_REQUIRE_SHARED(path);
  const nlohmann::json json = nlohmann::json::parse(read_file(path));
  const BpeEncoder bpe = BpeEncoder::from_json(json["model"], path.string());
  std::mt19937 rng(1234);
  const std::string alphabet = "etaoinshrdlu ETAOIN0123456789.,'\n\xC3\xA9\xE4\xB8\xAD";
  for (int trial = 0; trial < 3000; ++trial) {
    std::string word;
    const size_t length = 1 + rng() % 48;
    while (word.size() < length) word += alphabet[rng() % alphabet.size()];
    word.resize(length);
    std::vector<BpeToken> scan, heap;
    bpe.merge_word(word, scan, BpeEncoder::MergeStrategy::LinearScan);
    bpe.merge_word(word, heap, BpeEncoder::MergeStrategy::Heap);
    ASSERT_EQ(scan.size(), heap.size()) << word;
    for (size_t i = 0; i < scan.size(); ++i) {
      ASSERT_EQ(scan[i].id, heap[i].id) << word;
      ASSERT_EQ(scan[i].begin, heap[i].begin) << word;
      ASSERT_EQ(scan[i].end, heap[i].end) << word;
    }
  }
}

}  // namespace
}  // namespace ll
