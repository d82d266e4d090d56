// Added tokens (tokenizer.json "added_tokens": special tokens such as <|eot_id|>, and any
// tokens added after training). Like the AddedVocabulary of Hugging Face `tokenizers`, they are
// found in the raw text before pre-tokenization, leftmost first and longest among those
// starting at the same byte, and are never split: a first pass matches the tokens with
// `normalized: false`, a second pass the `normalized: true` ones in the text left between.
// `single_word`, `lstrip` and `rstrip` behave as there.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ll {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;  // tokenizers' default for a non-special token
};

// A stretch of the input: an added token (added_id >= 0; the range includes any whitespace
// lstrip/rstrip absorbed) or text for the pre-tokenizer (added_id == -1).
struct Segment {
  uint32_t begin = 0;
  uint32_t end = 0;
  int32_t added_id = -1;
};

class AddedVocabulary {
 public:
  // Adds the tokens (non-empty contents, distinct ids); builds the matchers.
  explicit AddedVocabulary(std::vector<AddedToken> tokens);
  AddedVocabulary() = default;

  // Cuts text[begin, end) into segments, appended to `out` in order, covering every byte.
  void split(std::string_view text, std::vector<Segment>& out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* find_id(int32_t id) const;
  std::optional<int32_t> find_content(std::string_view content) const;

 private:
  // A byte trie over token contents for leftmost-longest matching.
  struct Matcher {
    struct Node {
      std::vector<std::pair<uint8_t, int32_t>> children;  // (byte, node index)
      int32_t token = -1;  // index in tokens_ of the token ending here
    };
    std::vector<Node> nodes = std::vector<Node>(1);
    bool first_byte[256] = {};
    bool empty() const { return nodes.size() == 1; }
    void insert(std::string_view content, int32_t token);
    // Longest token starting at text[pos]: (length, token index), or (0, -1).
    std::pair<size_t, int32_t> longest_at(std::string_view text, size_t pos) const;
  };

  // tokenizers' find_matches on text[begin, end) as a sentence of its own.
  void find_matches(std::string_view text, uint32_t begin, uint32_t end, const Matcher& matcher,
                    std::vector<Segment>& out) const;

  std::vector<AddedToken> tokens_;
  Matcher raw_;         // normalized == false
  Matcher normalized_;  // normalized == true (no normalizer is supported, so same text)
};

}  // namespace ll
