// The tokenizer `llama-lora init` trains on the built-in SQL corpus (data/sql_corpus.h):
// valid and deterministic output, and a tokenizer that ll::Tokenizer loads, encodes exactly
// as Hugging Face tokenizers does (ids pinned from tokenizers 0.20.3) and decodes back to the
// input.
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
#include "data/sql_corpus.h"
#include "test_util.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/reference_templates.h"
#include "tokenizer/tokenizer.h"

namespace ll {
namespace {

using nlohmann::json;

// The built-in tokenizer is trained once per test binary (it is deterministic).
const json& builtin_tokenizer_json() {
  static const json tokenizer = train_builtin_tokenizer(1024);
  return tokenizer;
}

const Tokenizer& builtin_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::from_json(builtin_tokenizer_json(), "built-in");
  return tokenizer;
}

TEST(BuiltinTokenizer, HasTheRequestedSizeAndValidMerges) {
  const json& tokenizer = builtin_tokenizer_json();
  const json& vocab = tokenizer["model"]["vocab"];
  const json& merges = tokenizer["model"]["merges"];
  const json& added = tokenizer["added_tokens"];
  ASSERT_EQ(vocab.size(), 1024u - kBuiltinSpecialTokenCount);
  ASSERT_EQ(added.size(), static_cast<size_t>(kBuiltinSpecialTokenCount));
  EXPECT_EQ(merges.size(), vocab.size() - 256);  // no duplicate merge results in practice

  // ids 0..n-1 each used once; the first 256 are the byte alphabet.
  std::vector<std::string> by_id(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    const auto index = id.get<size_t>();
    ASSERT_LT(index, by_id.size());
    ASSERT_TRUE(by_id[index].empty()) << "id " << index << " used twice";
    by_id[index] = token;
  }
  const std::vector<std::string> alphabet = byte_level_alphabet();
  for (size_t i = 0; i < 256; ++i) EXPECT_EQ(by_id[i], alphabet[i]);

  // tokenizers requires both halves and the result of every merge in the vocabulary; each
  // half must exist before the merge that uses it (its id is a byte or an earlier merge).
  std::map<std::string, size_t> first_rank;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string merge = merges[rank].get<std::string>();
    const size_t space = merge.find(' ');
    ASSERT_NE(space, std::string::npos) << merge;
    ASSERT_EQ(merge.find(' ', space + 1), std::string::npos) << merge;
    const std::string left = merge.substr(0, space);
    const std::string right = merge.substr(space + 1);
    ASSERT_TRUE(vocab.contains(left)) << merge;
    ASSERT_TRUE(vocab.contains(right)) << merge;
    ASSERT_TRUE(vocab.contains(left + right)) << merge;
    for (const std::string& part : {left, right}) {
      const auto id = vocab[part].get<size_t>();
      EXPECT_TRUE(id < 256 || id < 256 + rank) << merge;
    }
  }

  // Added tokens: Llama-3's specials after the BPE vocabulary, all special.
  for (size_t i = 0; i < added.size(); ++i) {
    EXPECT_EQ(added[i]["id"].get<size_t>(), vocab.size() + i);
    EXPECT_TRUE(added[i]["special"].get<bool>());
  }
  EXPECT_EQ(added[0]["content"], "<|begin_of_text|>");
  EXPECT_EQ(added[9]["content"], "<|eot_id|>");
  EXPECT_EQ(tokenizer["model"]["ignore_merges"], true);
  EXPECT_EQ(tokenizer["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"],
            std::string(kLlama3SplitPattern));
}

TEST(BuiltinTokenizer, TrainingIsDeterministicAndQuick) {
  const auto start = std::chrono::steady_clock::now();
  const json again = train_builtin_tokenizer(1024);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(again.dump(), builtin_tokenizer_json().dump());
#if defined(NDEBUG) && !defined(__SANITIZE_ADDRESS__)
  EXPECT_LT(seconds, 2.0) << "training the 1,024-token tokenizer took " << seconds << " s";
#endif
  RecordProperty("train_seconds", std::to_string(seconds));
  // A different size is a prefix of the same merge sequence.
  const json smaller = train_builtin_tokenizer(512);
  const json& merges = builtin_tokenizer_json()["model"]["merges"];
  const json& small_merges = smaller["model"]["merges"];
  ASSERT_EQ(small_merges.size(), 512u - kBuiltinSpecialTokenCount - 256);
  for (size_t i = 0; i < small_merges.size(); ++i) EXPECT_EQ(small_merges[i], merges[i]);
}

TEST(BuiltinTokenizer, LoadsAndEncodesLikeHuggingFaceTokenizers) {
  const Tokenizer& tokenizer = builtin_tokenizer();
  EXPECT_EQ(tokenizer.vocab_size(), 1024);
  EXPECT_EQ(tokenizer.bos_id(), 1008);
  EXPECT_EQ(tokenizer.token_to_id("<|end_of_text|>"), 1009);
  EXPECT_EQ(tokenizer.token_to_id("<|eot_id|>"), 1017);
  EXPECT_TRUE(tokenizer.is_special(1017));
  // Ids from Hugging Face tokenizers 0.20.3 (Tokenizer.from_file(...).encode(text).ids) on
  // the tokenizer.json `llama-lora init --preset tiny` wrote; they change only when the
  // corpus or the trainer does (then regenerate them and say why).
  EXPECT_EQ(tokenizer.encode("SELECT COUNT(*) FROM head WHERE age > 56", AddSpecialTokens::Yes),
            (std::vector<int32_t>{1008, 302, 444, 496, 306, 542, 362, 612, 675, 220, 20, 21}));
  EXPECT_EQ(tokenizer.encode("How many heads of the departments are older than 56 ?",
                             AddSpecialTokens::Yes),
            (std::vector<int32_t>{1008, 480, 473, 542, 82, 352, 273, 524, 82, 349, 320, 75, 720,
                                  464, 220, 20, 21, 220, 30}));
  EXPECT_EQ(tokenizer.encode("Zo\u00eb \u6771\u4eac \U0001F680<|eot_id|>\n", AddSpecialTokens::Yes),
            (std::vector<int32_t>{1008, 57, 78, 127, 104, 220, 162, 251, 109, 160, 118, 105, 220,
                                  172, 253, 248, 222, 1017, 198}));
}

TEST(BuiltinTokenizer, SqlIsShortAndRoundTrips) {
  const Tokenizer& tokenizer = builtin_tokenizer();
  // The SQL keywords and the system prompt's words are single tokens.
  for (const char* word : {"SELECT", " FROM", " WHERE", " COUNT", "CREATE", " TABLE", " VARCHAR",
                           " INTEGER", " SQL", " query", " English"}) {
    EXPECT_EQ(tokenizer.encode(word, AddSpecialTokens::No).size(), 1u) << word;
  }
  size_t bytes = 0;
  size_t tokens = 0;
  for (const std::string& text :
       {std::string("CREATE TABLE head (age INTEGER, name VARCHAR)"),
        std::string("SELECT name, born_state, age FROM head ORDER BY age"),
        std::string("What is the average number of employees of the departments whose rank is "
                    "between 10 and 15?"),
        make_sql_corpus(4000, 99)}) {
    const std::vector<int32_t> ids = tokenizer.encode(text, AddSpecialTokens::No);
    EXPECT_EQ(tokenizer.decode(ids, DecodeSpecial::Keep), text);
    bytes += text.size();
    tokens += ids.size();
  }
  EXPECT_GT(static_cast<double>(bytes) / static_cast<double>(tokens), 3.0);
}

TEST(BuiltinTokenizer, SqlCreateContextIsShort) {
  const auto path = test::shared_data() / "sql-create-context" / "sample-3500.jsonl";
  LL_REQUIRE_SHARED(path);
  std::ifstream in(path);
  std::string line;
  size_t bytes = 0;
  size_t tokens = 0;
  for (int row = 0; row < 300 && std::getline(in, line); ++row) {
    const json record = json::parse(line);
    for (const char* field : {"question", "context", "answer"}) {
      const std::string text = record[field].get<std::string>();
      const std::vector<int32_t> ids = builtin_tokenizer().encode(text, AddSpecialTokens::No);
      ASSERT_EQ(builtin_tokenizer().decode(ids, DecodeSpecial::Keep), text);
      bytes += text.size();
      tokens += ids.size();
    }
  }
  // Real rows use names the built-in corpus never saw; still well above 1 byte per token.
  EXPECT_GT(static_cast<double>(bytes) / static_cast<double>(tokens), 2.5);
}

TEST(BuiltinTokenizer, RoundTripsArbitraryUnicode) {
  const Tokenizer& tokenizer = builtin_tokenizer();
  std::mt19937 rng(5);
  // Code points from every UTF-8 length, controls and spaces included (no surrogates).
  const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x00, 0x7F}, {0x80, 0x7FF}, {0x800, 0xD7FF}, {0xE000, 0xFFFD}, {0x10000, 0x10FFFF}};
  for (int round = 0; round < 200; ++round) {
    std::string text;
    const int length = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < length; ++i) {
      const auto& [low, high] = ranges[rng() % ranges.size()];
      const char32_t cp = low + static_cast<char32_t>(rng() % (high - low + 1));
      if (cp < 0x80) {
        text.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        text.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        text.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else if (cp < 0x10000) {
        text.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        text.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        text.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else {
        text.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        text.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        text.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        text.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    }
    const std::vector<int32_t> ids = tokenizer.encode(text, AddSpecialTokens::Yes);
    ASSERT_EQ(ids.front(), 1008);
    ASSERT_EQ(tokenizer.decode(ids, DecodeSpecial::Skip), text) << "round " << round;
  }
  // Every single byte decodes back to itself through the raw-byte decode.
  for (int byte = 0; byte < 256; ++byte) {
    const std::string text(1, static_cast<char>(byte));
    const std::vector<int32_t> ids = tokenizer.encode(text, AddSpecialTokens::No);
    EXPECT_EQ(tokenizer.decode_bytes(ids, DecodeSpecial::Keep), text) << byte;
  }
}

TEST(BuiltinTokenizer, ConfigCarriesTheLlama3ChatTemplate) {
  const json config = llama3_tokenizer_config(builtin_tokenizer_json(), 2048);
  EXPECT_EQ(config["chat_template"],
            std::string(reference_template_source(ReferenceTemplate::Llama3)));
  EXPECT_EQ(config["bos_token"], "<|begin_of_text|>");
  EXPECT_EQ(config["eos_token"], "<|end_of_text|>");
  EXPECT_EQ(config["model_max_length"], 2048);
  EXPECT_EQ(config["tokenizer_class"], "PreTrainedTokenizerFast");
  ASSERT_EQ(config["added_tokens_decoder"].size(), static_cast<size_t>(kBuiltinSpecialTokenCount));
  EXPECT_EQ(config["added_tokens_decoder"]["1017"]["content"], "<|eot_id|>");
  EXPECT_EQ(config["added_tokens_decoder"]["1017"]["special"], true);

  // Our chat template reader renders the seed's conversation shape with it, and finds its
  // end of turn among the added tokens; every marker is one special token of the tokenizer.
  const ChatTemplate chat = ChatTemplate::from_tokenizer_config(config, "built-in");
  EXPECT_EQ(chat.end_of_turn(), "<|eot_id|>");
  const std::vector<ChatMessage> messages = {{"system", "You are a text to SQL query translator."},
                                             {"user", "How many heads are there?"},
                                             {"assistant", "SELECT COUNT(*) FROM head"}};
  const std::string rendered = chat.render(messages, GenerationPrompt::Omit);
  const std::vector<int32_t> ids = builtin_tokenizer().encode(rendered, AddSpecialTokens::No);
  EXPECT_EQ(ids.front(), 1008);
  // <|start_header_id|>: one per message; the current Llama-3 template adds no trailing
  // assistant header without a generation prompt.
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1014), 3);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1017), 3);  // <|eot_id|>
  EXPECT_LT(ids.size(), 60u);

  const json map = llama3_special_tokens_map();
  EXPECT_EQ(map["bos_token"]["content"], "<|begin_of_text|>");
  EXPECT_EQ(map["eos_token"]["content"], "<|end_of_text|>");
}

TEST(BuiltinTokenizer, BosMustBeASpecialToken) {
  BpeModel model;
  model.tokens = byte_level_alphabet();
  const std::vector<std::string> specials = llama3_special_tokens(10);
  EXPECT_THROW(bpe_tokenizer_json(model, specials, "<s>"), Error);
  const std::vector<std::string> clash = {"<|begin_of_text|>", "a"};  // "a" is a byte token
  EXPECT_THROW(bpe_tokenizer_json(model, clash, "<|begin_of_text|>"), Error);
}

}  // namespace
}  // namespace ll
