// Stopping (tools/stopping.h) on the real Llama-3 tokenizer and templates of ../shared/data:
// the stop ids a model folder gives (generation_config's list, the tokenizer's EOS, the
// template's end-of-turn token, each once), stop strings found in the decoded text (across
// tokens, starting inside a token's bytes), the answer cut before what stopped it, and the
// watch that stops each sequence of a batch on its own.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "formats/llama_config.h"
#include "model/llama_generate.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tools/stopping.h"

namespace ll {
namespace {

// The Meta-Llama-3 tokenizer and its first Instruct template (eos_token <|end_of_text|>).
const fs::path kLlama3Tokenizer = test::shared_data() / "llama3-tokenizer";
// Llama-3.2-3B-Instruct's config, generation_config (eos [128001, 128008, 128009]) and
// tokenizer_config (eos_token <|eot_id|>); its tokenizer.json is the Llama-3 one above.
const fs::path kLlama32 = test::shared_data() / "real-models" / "meta-llama-Llama-3.2-3B-Instruct";

constexpr int32_t kEndOfText = 128001;  // <|end_of_text|>
constexpr int32_t kEomId = 128008;      // <|eom_id|> in 3.1/3.2
constexpr int32_t kEotId = 128009;      // <|eot_id|>

TEST(StopIds, BaseEosPlusTheInstructTemplatesEndOfTurn) {
  // The seed's case: Meta-Llama-3-8B's generation_config says 128001 only; prompts are rendered
  // with the Instruct tokenizer's template, whose turns close with <|eot_id|>.
  LL_REQUIRE_SHARED(kLlama3Tokenizer);
  const Tokenizer tokenizer = Tokenizer::load(kLlama3Tokenizer);
  const ChatTemplate chat_template = ChatTemplate::load(kLlama3Tokenizer);
  GenerationDefaults base;
  base.eos_token_ids = {kEndOfText};
  const StopTokenSources sources = stop_token_sources(base, chat_template);
  EXPECT_EQ(sources.tokenizer_eos, "<|end_of_text|>");
  EXPECT_EQ(sources.end_of_turn, "<|eot_id|>");
  // 128001 from generation_config and again as the tokenizer's EOS: listed once.
  EXPECT_EQ(collect_stop_ids(sources, &tokenizer), (std::vector<int32_t>{kEndOfText, kEotId}));
}

TEST(StopIds, GenerationConfigListAndTokenizerEosDeduplicated) {
  LL_REQUIRE_SHARED(kLlama32);
  LL_REQUIRE_SHARED(kLlama3Tokenizer);
  const Tokenizer tokenizer = Tokenizer::load(kLlama3Tokenizer);
  const ChatTemplate chat_template = ChatTemplate::load(kLlama32);
  const GenerationDefaults defaults =
      load_generation_defaults(kLlama32, load_llama_config(kLlama32));
  ASSERT_EQ(defaults.eos_token_ids, (std::vector<int32_t>{kEndOfText, kEomId, kEotId}));
  StopTokenSources sources = stop_token_sources(defaults, chat_template);
  EXPECT_EQ(sources.tokenizer_eos, "<|eot_id|>");
  EXPECT_EQ(sources.end_of_turn, "<|eot_id|>");
  // The tokenizer's EOS and the end of turn are both 128009, already in the list.
  EXPECT_EQ(collect_stop_ids(sources, &tokenizer),
            (std::vector<int32_t>{kEndOfText, kEomId, kEotId}));
  sources.extra_ids = {kEotId, 26, kEndOfText, 26};  // --eos_token_id: only 26 is new
  EXPECT_EQ(collect_stop_ids(sources, &tokenizer),
            (std::vector<int32_t>{kEndOfText, kEomId, kEotId, 26}));
}

TEST(StopIds, OrderIsGenerationConfigTokenizerEosEndOfTurnExtra) {
  LL_REQUIRE_SHARED(kLlama3Tokenizer);
  const Tokenizer tokenizer = Tokenizer::load(kLlama3Tokenizer);
  StopTokenSources sources;
  sources.eos_token_ids = {7, 7};
  sources.tokenizer_eos = "<|eot_id|>";
  sources.end_of_turn = "<|end_of_text|>";
  sources.extra_ids = {9};
  EXPECT_EQ(collect_stop_ids(sources, &tokenizer),
            (std::vector<int32_t>{7, kEotId, kEndOfText, 9}));
  // No strings: no tokenizer needed.
  EXPECT_EQ(collect_stop_ids({{3}, std::nullopt, std::nullopt, {3, 4}}, nullptr),
            (std::vector<int32_t>{3, 4}));
}

TEST(StopIds, ATokenOutsideTheVocabularyIsAnErrorNamingIt) {
  LL_REQUIRE_SHARED(kLlama3Tokenizer);
  const Tokenizer tokenizer = Tokenizer::load(kLlama3Tokenizer);
  StopTokenSources sources;
  sources.end_of_turn = "<|im_end|>";
  const std::string message = test::error_of([&] { collect_stop_ids(sources, &tokenizer); });
  EXPECT_NE(message.find("end-of-turn token '<|im_end|>' is not in the tokenizer's vocabulary"),
            std::string::npos)
      << message;
  sources.end_of_turn.reset();
  sources.tokenizer_eos = "</s>";
  const std::string eos = test::error_of([&] { collect_stop_ids(sources, &tokenizer); });
  EXPECT_NE(eos.find("tokenizer_config.json's eos_token '</s>'"), std::string::npos) << eos;
}

TEST(StopStrings, EarliestOfSeveralAndNoEmptyString) {
  const StopStrings stops({"FROM", ";", "name"});
  EXPECT_EQ(stops.find_in("SELECT name FROM t;"), 7u);  // "name" starts before "FROM" and ";"
  EXPECT_EQ(stops.find_in("SELECT 1"), std::string_view::npos);
  EXPECT_EQ(StopStrings().find_in("anything"), std::string_view::npos);
  const std::string message = test::error_of([] { StopStrings({"x", ""}); });
  EXPECT_NE(message.find("--stop: an empty stop string"), std::string::npos) << message;
}

// "SELECT name FROM users;\nSELECT age FROM pets" in Llama-3 tokens: SELECT | ␣name | ␣FROM |
// ␣users | ;\n | SELECT | ␣age | ␣FROM | ␣pets.
const std::vector<int32_t> kTwoQueries = {4963, 836, 4393, 3932, 280, 4963, 4325, 4393, 26159};

TEST(DecodeAnswer, StopStringAcrossTokensStartingInsideOne) {
  LL_REQUIRE_SHARED(kLlama3Tokenizer);
  const Tokenizer tokenizer = Tokenizer::load(kLlama3Tokenizer);
  ASSERT_EQ(tokenizer.encode("SELECT name FROM users;\nSELECT age FROM pets", AddSpecialTokens::No),
            kTwoQueries);
  // "s;\nSEL" starts with the last byte of " users", holds all of ";\n" and ends two thirds
  // into the second "SELECT": the text is cut inside " users".
  StopCriteria criteria{{kEotId}, StopStrings({"s;\nSEL"})};
  EXPECT_EQ(decode_answer(tokenizer, kTwoQueries, criteria), "SELECT name FROM user");
  // A string within one token's bytes, and one that is not there.
  criteria.stop_strings = StopStrings({"ag"});
  EXPECT_EQ(decode_answer(tokenizer, kTwoQueries, criteria), "SELECT name FROM users;\nSELECT ");
  criteria.stop_strings = StopStrings({"WHERE"});
  EXPECT_EQ(decode_answer(tokenizer, kTwoQueries, criteria),
            "SELECT name FROM users;\nSELECT age FROM pets");
}

TEST(DecodeAnswer, CutBeforeTheFirstStopIdSpecialOrNot) {
  LL_REQUIRE_SHARED(kLlama3Tokenizer);
  const Tokenizer tokenizer = Tokenizer::load(kLlama3Tokenizer);
  // An answer that ran past its <|eot_id|> into a new turn.
  const std::vector<int32_t> ids = {4963, 836, kEotId, 4963, 4325};
  const StopCriteria criteria{{kEndOfText, kEotId}, {}};
  EXPECT_EQ(decode_answer(tokenizer, ids, criteria), "SELECT name");
  // A stop id that is an ordinary token (--eos_token_id 280, ";\n") is not printed either.
  const StopCriteria plain{{280}, {}};
  EXPECT_EQ(decode_answer(tokenizer, kTwoQueries, plain), "SELECT name FROM users");
  // No stop id: special tokens are still skipped.
  EXPECT_EQ(decode_answer(tokenizer, ids, StopCriteria{}), "SELECT nameSELECT age");
}

TEST(WatchStopStrings, EachSequenceStopsAtTheTokenThatCompletesItsString) {
  LL_REQUIRE_SHARED(kLlama3Tokenizer);
  const Tokenizer tokenizer = Tokenizer::load(kLlama3Tokenizer);
  const StopStrings stops({"s;\nSEL", " pets"});
  EXPECT_FALSE(watch_stop_strings(tokenizer, StopStrings()));  // nothing to watch
  const TokenCallback watch = watch_stop_strings(tokenizer, stops);
  ASSERT_TRUE(watch);
  // Two sequences interleaved as generate_tokens calls the callback; sequence 1 gets the
  // tokens from the fourth on ("␣users;\nSELECT␣age␣FROM␣pets"), so it completes the string
  // at another step, and neither sees the other's text.
  const std::vector<int32_t> second(kTwoQueries.begin() + 3, kTwoQueries.end());
  std::vector<TokenVerdict> first_verdicts, second_verdicts;
  for (size_t step = 0; step < kTwoQueries.size(); ++step) {
    first_verdicts.push_back(watch(0, kTwoQueries[step]));
    if (step < second.size()) second_verdicts.push_back(watch(1, second[step]));
  }
  using enum TokenVerdict;
  // Sequence 0: the second SELECT (index 5) completes "s;\nSEL"; " pets" (8) again.
  EXPECT_EQ(first_verdicts, (std::vector<TokenVerdict>{Continue, Continue, Continue, Continue,
                                                       Continue, Stop, Stop, Stop, Stop}));
  // Sequence 1: " users", ";\n", "SELECT" (index 2) completes it.
  EXPECT_EQ(second_verdicts,
            (std::vector<TokenVerdict>{Continue, Continue, Stop, Stop, Stop, Stop}));
  // A fresh watch for a new batch starts from empty texts.
  const TokenCallback fresh = watch_stop_strings(tokenizer, stops);
  EXPECT_EQ(fresh(0, 26159), Stop);  // " pets" alone
  EXPECT_EQ(fresh(1, 4963), Continue);
}

}  // namespace
}  // namespace ll
