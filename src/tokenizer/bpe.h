// The BPE model of a byte-level tokenizer.json ("model": {"type": "BPE", ...}): vocabulary,
// merges by rank, `ignore_merges`, and a cache of word -> tokens. Words are raw bytes: the
// vocabulary is re-keyed at load time from byte-level strings ("Ġthe") to the bytes they stand
// for (" the"), so encoding never builds byte-level strings.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ll {

// Splits a tokenizer.json merge entry into its two tokens: "a b" (split at the first space, as
// tokenizers does) or ["a", "b"] (the format since tokenizers 0.20, which allows spaces in
// tokens). Returns false when the entry has neither form. The views point into `merge`.
bool split_bpe_merge(const nlohmann::json& merge, std::string_view& left, std::string_view& right);

// One token of a word: its id and the byte range [begin, end) of the word it covers.
struct BpeToken {
  int32_t id;
  uint32_t begin;
  uint32_t end;
};

// String -> id, open addressing over one arena of key bytes: a lookup is one hash and
// usually one memcmp, no node to chase (vocab lookups are the hot path of ignore_merges, and
// load does ~850,000 of them for Llama-3's merges).
class StringIdTable {
 public:
  void reserve(size_t count);                     // before inserting `count` keys
  bool insert(std::string_view key, int32_t id);  // false (and no change) if present
  std::optional<int32_t> find(std::string_view key) const {
    if (slots_.empty()) return std::nullopt;
    const uint64_t h = hash(key);
    const auto tag = static_cast<uint32_t>(h);
    for (size_t slot = h & mask_;; slot = (slot + 1) & mask_) {
      const Slot& entry = slots_[slot];
      if (entry.id < 0) return std::nullopt;
      if (entry.tag == tag && entry.length == key.size() &&
          std::string_view(arena_.data() + entry.offset, entry.length) == key) {
        return entry.id;
      }
    }
  }
  size_t size() const { return count_; }

 private:
  struct Slot {
    uint32_t tag = 0;  // low bits of the hash, checked before the bytes
    uint32_t offset = 0;
    uint32_t length = 0;
    int32_t id = -1;  // -1: empty
  };
  static uint64_t hash(std::string_view key);
  void grow();
  std::vector<Slot> slots_;
  std::string arena_;
  size_t mask_ = 0;
  size_t count_ = 0;
};

// Merge table: (left id, right id) -> (rank, merged id), open addressing on a 64-bit key.
class MergeTable {
 public:
  struct Entry {
    uint64_t key;
    int32_t rank;
    int32_t merged;
  };
  void reserve(size_t count);
  void insert(int32_t left, int32_t right, int32_t rank, int32_t merged);  // later wins
  const Entry* find(int32_t left, int32_t right) const {
    const uint64_t key = pack(left, right);
    for (uint64_t slot = hash(key);; slot = (slot + 1) & mask_) {
      const Entry& entry = slots_[slot];
      if (entry.key == key) return &entry;
      if (entry.key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t pack(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  uint64_t hash(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }
  std::vector<Entry> slots_ = std::vector<Entry>(1, Entry{kEmpty, 0, 0});
  uint64_t mask_ = 0;
  int shift_ = 63;
};

class BpeEncoder {
 public:
  // `model` is tokenizer.json's "model" object; errors name `origin` (the file).
  static BpeEncoder from_json(const nlohmann::json& model, const std::string& origin);

  BpeEncoder(BpeEncoder&&) noexcept;
  BpeEncoder& operator=(BpeEncoder&&) noexcept;
  ~BpeEncoder();

  // Appends the tokens of one pre-tokenized word (raw bytes) to `out`.
  void encode_word(std::string_view word, std::vector<BpeToken>& out) const;

  // Vocabulary in its tokenizer.json (byte-level) form.
  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;  // nullptr when the id has no entry
  int32_t id_limit() const { return static_cast<int32_t>(tokens_.size()); }  // largest id + 1

  // The merge step alone (no ignore_merges, no cache). Auto picks the linear scan for short
  // words and the heap for long ones; tests force each to check that they agree.
  enum class MergeStrategy { Auto, LinearScan, Heap };
  void merge_word(std::string_view word, std::vector<BpeToken>& out,
                  MergeStrategy strategy = MergeStrategy::Auto) const;

 private:
  struct Cache;
  BpeEncoder();
  void merge_symbols_small(std::vector<BpeToken>& symbols) const;
  void merge_symbols_heap(std::vector<BpeToken>& symbols) const;

  std::vector<std::string> tokens_;  // id -> byte-level string ("" where no token has the id)
  std::vector<uint8_t> has_token_;   // id -> whether tokens_[id] is a vocab entry
  StringIdTable token_ids_;          // byte-level string -> id
  StringIdTable byte_ids_;           // raw bytes -> id, for ignore_merges
  int32_t byte_token_[256];          // single byte -> id, -1 when the vocab lacks it
  MergeTable merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::unique_ptr<Cache> cache_;
};

}  // namespace ll
