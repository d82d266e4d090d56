// Tests of the byte-level BPE trainer: merges worked out by hand on small corpora and the
// Llama-3 special tokens. The tokenizer `llama-lora init` trains with it on the built-in
// corpus is tested in tests/data/test_builtin_tokenizer.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/reference_templates.h"
#include "tokenizer/tokenizer.h"

namespace ll {
namespace {

using nlohmann::json;

std::vector<std::string> merge_strings(const BpeModel& model) {
  std::vector<std::string> out;
  for (const auto& [left, right] : model.merges) out.push_back(left + " " + right);
  return out;
}

TEST(BpeTrainer, ByteAlphabetHasGpt2Order) {
  const std::vector<std::string> alphabet = byte_level_alphabet();
  ASSERT_EQ(alphabet.size(), 256u);
  EXPECT_EQ(alphabet[0], "!");
  EXPECT_EQ(alphabet[93], "~");
  EXPECT_EQ(alphabet[94], "\u00a1");   // ¡
  EXPECT_EQ(alphabet[187], "\u00ff");  // ÿ
  EXPECT_EQ(alphabet[198], "\u010a");  // Ċ = '\n' (Llama-3's and GPT-2's id 198)
  EXPECT_EQ(alphabet[220], "\u0120");  // Ġ = ' '  (id 220 in both)
  EXPECT_EQ(std::set<std::string>(alphabet.begin(), alphabet.end()).size(), 256u);
}

TEST(BpeTrainer, LearnsMostFrequentPairsFirst) {
  // Pre-tokens: "ab" x1, " ab" x2, " cd" x1. Pair counts: (a,b) 3, (Ġ,a) 2, (Ġ,c) 1, (c,d) 1.
  // After "a b": (Ġ,ab) 2 -> "Ġ ab". Every other pair occurs once: min_frequency 2 stops.
  BpeTrainerOptions options;
  options.bpe_vocab_size = 300;
  const BpeModel model = train_bpe("ab ab ab cd", options);
  EXPECT_EQ(merge_strings(model), (std::vector<std::string>{"a b", "Ġ ab"}));
  ASSERT_EQ(model.tokens.size(), 258u);
  EXPECT_EQ(model.tokens[256], "ab");
  EXPECT_EQ(model.tokens[257], "Ġab");

  // With min_frequency 1 the tie between (Ġ,c) and (c,d) goes to the smaller ids:
  // 'c' is id 66 and 'Ġ' 220, so "c d" first, then "Ġ cd".
  options.min_frequency = 1;
  EXPECT_EQ(merge_strings(train_bpe("ab ab ab cd", options)),
            (std::vector<std::string>{"a b", "Ġ ab", "c d", "Ġ cd"}));

  // The vocabulary size caps the merges.
  options.bpe_vocab_size = 257;
  EXPECT_EQ(merge_strings(train_bpe("ab ab ab cd", options)), (std::vector<std::string>{"a b"}));
}

TEST(BpeTrainer, CountsOverlappingPairsLikeTokenizers) {
  // "aaaa" and ",aaaa" (the regex keeps one leading punctuation with the letters): (a,a)
  // counts 3 per word; merging left to right gives "aa aa" in both, then (aa,aa) counts 2.
  BpeTrainerOptions options;
  options.bpe_vocab_size = 258;
  const BpeModel model = train_bpe("aaaa,aaaa", options);
  EXPECT_EQ(merge_strings(model), (std::vector<std::string>{"a a", "aa aa"}));
}

TEST(BpeTrainer, RejectsTooSmallVocab) {
  BpeTrainerOptions options;
  options.bpe_vocab_size = 100;
  EXPECT_THROW(train_bpe("abc", options), Error);
  EXPECT_THROW(train_llama3_style_tokenizer("abc", 200), Error);
  EXPECT_THROW(llama3_special_tokens(5), Error);
}

TEST(BpeTrainer, KeepsInvalidUtf8Bytes) {
  // Bytes that are not UTF-8 are pieces of their own; they still count and merge.
  BpeTrainerOptions options;
  options.bpe_vocab_size = 257;
  const std::string corpus = "\xff\xfe x \xff\xfe y \xff\xfe";
  const BpeModel model = train_bpe(corpus, options);
  ASSERT_EQ(model.merges.size(), 1u);
  EXPECT_EQ(model.tokens[256], "\u00ff\u00fe");  // ÿþ: the bytes 0xFF 0xFE
}

TEST(BpeTrainer, SpecialTokensFollowLlama3Order) {
  const std::vector<std::string> tokens = llama3_special_tokens(12);
  ASSERT_EQ(tokens.size(), 12u);
  // Same offsets as Llama-3's ids 128000.. (128006 start_header, 128009 eot).
  EXPECT_EQ(tokens[0], "<|begin_of_text|>");
  EXPECT_EQ(tokens[1], "<|end_of_text|>");
  EXPECT_EQ(tokens[6], "<|start_header_id|>");
  EXPECT_EQ(tokens[7], "<|end_header_id|>");
  EXPECT_EQ(tokens[9], "<|eot_id|>");
  EXPECT_EQ(tokens[10], "<|reserved_special_token_5|>");
}

}  // namespace
}  // namespace ll
