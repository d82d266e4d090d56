// See bpe_trainer.h. Training follows Hugging Face tokenizers' BpeTrainer: words (pre-tokens)
// are counted once, each word is a sequence of symbol ids, a max-heap holds pair counts, and
// merging a pair only revisits the words that contain it. The heap is lazy: a popped entry
// whose count is stale is pushed back with the current count (counts of existing pairs only
// ever fall, and every pair a merge creates is pushed with its full count).
#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <array>
#include <optional>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/reference_templates.h"

namespace ll {

const std::string_view kLlama3SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

constexpr std::string_view kOrigin = "bpe-trainer";

// Token id of each byte: GPT-2's vocabulary lists the bytes in the order of their
// byte-level code points (printable ones keep theirs, the rest come after U+0100).
struct ByteLevelTable {
  std::array<uint8_t, 256> order{};  // token id -> byte
  std::array<int32_t, 256> id{};     // byte -> token id
};

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table = [] {
    ByteLevelTable t;
    for (int b = 0; b < 256; ++b) t.order[b] = static_cast<uint8_t>(b);
    std::sort(t.order.begin(), t.order.end(), [](uint8_t x, uint8_t y) {
      return byte_level::byte_to_char(x) < byte_level::byte_to_char(y);
    });
    for (int i = 0; i < 256; ++i) t.id[t.order[i]] = i;
    return t;
  }();
  return table;
}

using Pair = uint64_t;  // (left id << 32) | right id
Pair make_pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
int32_t left_of(Pair pair) {
  return static_cast<int32_t>(pair >> 32);
}
int32_t right_of(Pair pair) {
  return static_cast<int32_t>(pair & 0xffffffffu);
}

struct HeapEntry {
  int64_t count;
  Pair pair;
  // Max-heap on count; among equal counts the smaller pair comes first (deterministic).
  bool operator<(const HeapEntry& other) const {
    if (count != other.count) return count < other.count;
    return pair > other.pair;
  }
};

nlohmann::json added_token_json(int32_t id, const std::string& content) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

}  // namespace

std::vector<std::string> byte_level_alphabet() {
  const ByteLevelTable& table = byte_level_table();
  std::vector<std::string> out;
  out.reserve(256);
  for (const uint8_t byte : table.order) {
    out.push_back(byte_level::encode(std::string_view(reinterpret_cast<const char*>(&byte), 1)));
  }
  return out;
}

BpeModel train_bpe(std::string_view corpus, const BpeTrainerOptions& options) {
  check(options.bpe_vocab_size >= 256, kOrigin,
        "bpe_vocab_size must be at least 256 (the byte tokens), got " +
            std::to_string(options.bpe_vocab_size));
  const ByteLevelTable& table = byte_level_table();

  // 1. Pre-token frequencies; words sorted so that ids and results do not depend on hashing.
  check(corpus.size() < UINT32_MAX, kOrigin, "corpus larger than 4 GiB");
  PreTokenizer pre_tokenizer;
  pre_tokenizer.splits.emplace_back(std::string(kLlama3SplitPattern), SplitRegex::Syntax::Regex,
                                    std::string(kOrigin));
  SplitScratch scratch;
  std::vector<Piece> pieces;
  pre_tokenizer.split(corpus, 0, static_cast<uint32_t>(corpus.size()), scratch, pieces);
  std::unordered_map<std::string_view, int64_t> word_counts;
  for (const Piece& piece : pieces) {
    ++word_counts[corpus.substr(piece.begin, piece.end - piece.begin)];
  }
  std::vector<std::pair<std::string_view, int64_t>> sorted_words(word_counts.begin(),
                                                                 word_counts.end());
  std::sort(sorted_words.begin(), sorted_words.end());

  BpeModel model;
  model.tokens = byte_level_alphabet();
  std::unordered_map<std::string, int32_t> token_ids;
  for (int32_t i = 0; i < 256; ++i) token_ids.emplace(model.tokens[i], i);

  std::vector<std::vector<int32_t>> words;  // symbol ids of each distinct word
  std::vector<int64_t> frequency;           // how often each word occurs
  words.reserve(sorted_words.size());
  for (const auto& [text, count] : sorted_words) {
    std::vector<int32_t> symbols;
    symbols.reserve(text.size());
    for (const char c : text) symbols.push_back(table.id[static_cast<uint8_t>(c)]);
    words.push_back(std::move(symbols));
    frequency.push_back(count);
  }

  // 2. Initial pair counts and, per pair, the words holding it.
  std::unordered_map<Pair, int64_t> pair_count;
  std::unordered_map<Pair, std::vector<uint32_t>> pair_words;
  for (uint32_t w = 0; w < words.size(); ++w) {
    const std::vector<int32_t>& symbols = words[w];
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const Pair pair = make_pair_key(symbols[i], symbols[i + 1]);
      pair_count[pair] += frequency[w];
      std::vector<uint32_t>& holders = pair_words[pair];
      if (holders.empty() || holders.back() != w) holders.push_back(w);
    }
  }
  std::priority_queue<HeapEntry> heap;
  for (const auto& [pair, count] : pair_count) heap.push({count, pair});

  // 3. Merge the most frequent pair until the vocabulary is full.
  std::vector<uint32_t> last_visit(words.size(), UINT32_MAX);
  uint32_t step = 0;
  while (model.tokens.size() < static_cast<size_t>(options.bpe_vocab_size) && !heap.empty()) {
    const HeapEntry top = heap.top();
    heap.pop();
    const auto found = pair_count.find(top.pair);
    const int64_t current = found == pair_count.end() ? 0 : found->second;
    if (current != top.count) {
      if (current > 0) heap.push({current, top.pair});
      continue;
    }
    if (current < options.min_frequency || current <= 0) break;

    const int32_t left = left_of(top.pair);
    const int32_t right = right_of(top.pair);
    std::string merged = model.tokens[left] + model.tokens[right];
    // Two merge paths can build the same string ("ab"+"c", "a"+"bc"): like tokenizers,
    // keep one token and record both merges.
    int32_t merged_id;
    if (const auto it = token_ids.find(merged); it != token_ids.end()) {
      merged_id = it->second;
    } else {
      merged_id = static_cast<int32_t>(model.tokens.size());
      token_ids.emplace(merged, merged_id);
      model.tokens.push_back(std::move(merged));
    }
    model.merges.emplace_back(model.tokens[left], model.tokens[right]);

    std::unordered_set<Pair> created;  // pairs with merged_id whose counts grew
    std::vector<uint32_t> holders = std::move(pair_words[top.pair]);
    pair_words.erase(top.pair);
    for (const uint32_t w : holders) {
      if (last_visit[w] == step) continue;
      last_visit[w] = step;
      std::vector<int32_t>& symbols = words[w];
      const int64_t f = frequency[w];
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        pair_count[make_pair_key(symbols[i], symbols[i + 1])] -= f;
      }
      std::vector<int32_t> replaced;
      replaced.reserve(symbols.size());
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
          replaced.push_back(merged_id);
          ++i;
        } else {
          replaced.push_back(symbols[i]);
        }
      }
      symbols = std::move(replaced);
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        const Pair pair = make_pair_key(symbols[i], symbols[i + 1]);
        pair_count[pair] += f;
        if (symbols[i] == merged_id || symbols[i + 1] == merged_id) {
          created.insert(pair);
          std::vector<uint32_t>& list = pair_words[pair];
          if (list.empty() || list.back() != w) list.push_back(w);
        }
      }
    }
    pair_count.erase(top.pair);
    for (const Pair pair : created) heap.push({pair_count[pair], pair});
    ++step;
  }
  return model;
}

std::vector<std::string> llama3_special_tokens(int32_t count) {
  check(count >= 10, kOrigin,
        "need at least 10 special tokens (Llama-3's chat tokens end at <|eot_id|>), got " +
            std::to_string(count));
  std::vector<std::string> out = {"<|begin_of_text|>",
                                  "<|end_of_text|>",
                                  "<|reserved_special_token_0|>",
                                  "<|reserved_special_token_1|>",
                                  "<|reserved_special_token_2|>",
                                  "<|reserved_special_token_3|>",
                                  "<|start_header_id|>",
                                  "<|end_header_id|>",
                                  "<|reserved_special_token_4|>",
                                  "<|eot_id|>"};
  for (int32_t i = 5; static_cast<int32_t>(out.size()) < count; ++i) {
    out.push_back("<|reserved_special_token_" + std::to_string(i) + "|>");
  }
  return out;
}

nlohmann::json bpe_tokenizer_json(const BpeModel& model,
                                  std::span<const std::string> special_tokens,
                                  std::string_view bos_token) {
  using nlohmann::json;
  json vocab = json::object();
  for (size_t id = 0; id < model.tokens.size(); ++id) {
    check(!vocab.contains(model.tokens[id]), kOrigin,
          "token '" + model.tokens[id] + "' appears twice in the vocabulary");
    vocab[model.tokens[id]] = id;
  }
  json merges = json::array();
  for (const auto& [left, right] : model.merges) merges.push_back(left + " " + right);

  json added = json::array();
  std::optional<int32_t> bos_id;
  for (size_t i = 0; i < special_tokens.size(); ++i) {
    const int32_t id = static_cast<int32_t>(model.tokens.size() + i);
    check(!vocab.contains(special_tokens[i]), kOrigin,
          "special token '" + special_tokens[i] + "' is also a BPE token");
    added.push_back(added_token_json(id, special_tokens[i]));
    if (special_tokens[i] == bos_token) bos_id = id;
  }
  check(bos_id.has_value(), kOrigin,
        "bos token '" + std::string(bos_token) + "' is not among the special tokens");
  const std::string bos(bos_token);

  // The same components as Meta-Llama-3's tokenizer.json on the Hugging Face hub.
  json pre_tokenizer = {
      {"type", "Sequence"},
      {"pretokenizers", json::array({{{"type", "Split"},
                                      {"pattern", {{"Regex", std::string(kLlama3SplitPattern)}}},
                                      {"behavior", "Isolated"},
                                      {"invert", false}},
                                     {{"type", "ByteLevel"},
                                      {"add_prefix_space", false},
                                      {"trim_offsets", true},
                                      {"use_regex", false}}})}};
  const json bos_piece = {{"SpecialToken", {{"id", bos}, {"type_id", 0}}}};
  json post_processor = {
      {"type", "Sequence"},
      {"processors",
       json::array(
           {{{"type", "ByteLevel"},
             {"add_prefix_space", true},
             {"trim_offsets", false},
             {"use_regex", true}},
            {{"type", "TemplateProcessing"},
             {"single", json::array({bos_piece, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
             {"pair", json::array({bos_piece,
                                   {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                   {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
                                   {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
             {"special_tokens",
              {{bos, {{"id", bos}, {"ids", json::array({*bos_id})}, {"tokens", {bos}}}}}}}})}};
  json decoder = {{"type", "ByteLevel"},
                  {"add_prefix_space", true},
                  {"trim_offsets", true},
                  {"use_regex", true}};
  json bpe = {{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", nullptr},
              {"continuing_subword_prefix", nullptr},
              {"end_of_word_suffix", nullptr},
              {"fuse_unk", false},
              {"byte_fallback", false},
              {"ignore_merges", true},
              {"vocab", std::move(vocab)},
              {"merges", std::move(merges)}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", std::move(added)},
          {"normalizer", nullptr},
          {"pre_tokenizer", std::move(pre_tokenizer)},
          {"post_processor", std::move(post_processor)},
          {"decoder", std::move(decoder)},
          {"model", std::move(bpe)}};
}

nlohmann::json llama3_tokenizer_config(const nlohmann::json& tokenizer_json,
                                       int64_t model_max_length) {
  using nlohmann::json;
  json decoder = json::object();
  for (const json& token : tokenizer_json.at("added_tokens")) {
    decoder[std::to_string(token.at("id").get<int64_t>())] = {
        {"content", token.at("content")},
        {"lstrip", token.value("lstrip", false)},
        {"normalized", token.value("normalized", false)},
        {"rstrip", token.value("rstrip", false)},
        {"single_word", token.value("single_word", false)},
        {"special", token.value("special", true)}};
  }
  // clean_up_tokenization_spaces is false (Meta's file says true): with true, transformers'
  // decode rewrites " ." to "." etc., so decode(encode(x)) would not give x back.
  return {{"added_tokens_decoder", std::move(decoder)},
          {"bos_token", "<|begin_of_text|>"},
          {"chat_template", std::string(reference_template_source(ReferenceTemplate::Llama3))},
          {"clean_up_tokenization_spaces", false},
          {"eos_token", "<|end_of_text|>"},
          {"model_input_names", json::array({"input_ids", "attention_mask"})},
          {"model_max_length", model_max_length},
          {"tokenizer_class", "PreTrainedTokenizerFast"}};
}

nlohmann::json llama3_special_tokens_map() {
  const auto token = [](const char* content) {
    return nlohmann::json{{"content", content},
                          {"lstrip", false},
                          {"normalized", false},
                          {"rstrip", false},
                          {"single_word", false}};
  };
  return {{"bos_token", token("<|begin_of_text|>")}, {"eos_token", token("<|end_of_text|>")}};
}

nlohmann::json train_llama3_style_tokenizer(std::string_view corpus, int32_t vocab_size) {
  check(vocab_size >= 256 + kBuiltinSpecialTokenCount, kOrigin,
        "vocab size must be at least " + std::to_string(256 + kBuiltinSpecialTokenCount) +
            " (256 byte tokens + " + std::to_string(kBuiltinSpecialTokenCount) +
            " special tokens), got " + std::to_string(vocab_size));
  BpeTrainerOptions options;
  options.bpe_vocab_size = vocab_size - kBuiltinSpecialTokenCount;
  const BpeModel model = train_bpe(corpus, options);
  const std::vector<std::string> specials = llama3_special_tokens(kBuiltinSpecialTokenCount);
  return bpe_tokenizer_json(model, specials, "<|begin_of_text|>");
}

}  // namespace ll
