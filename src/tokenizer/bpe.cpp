// See bpe.h. The merge loop matches `tokenizers` (models/bpe/word.rs): repeatedly merge the
// adjacent pair with the lowest rank, the leftmost one among equal ranks, until no adjacent
// pair has a merge. Short words use a linear scan; long ones a heap over a linked list, which
// gives the same order without the quadratic cost.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <queue>
#include <shared_mutex>

#include "core/error.h"
#include "core/text.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_fields.h"

namespace ll {

namespace {

// Vocabularies beyond this are not real tokenizers, and the id -> token table is sized by the
// largest id, so a hostile file could otherwise ask for gigabytes.
constexpr int64_t kMaxId = (int64_t{1} << 24) - 1;

// Words of up to this many symbols merge by linear scan (faster than a heap when short).
constexpr size_t kLinearScanLimit = 48;

// Words longer than this are not cached (rare, and they would crowd out the common ones).
constexpr size_t kCacheWordLimit = 256;
constexpr size_t kCacheCapacity = 1 << 17;

}  // namespace

// ---------------------------------------------------------------------------------------------
// StringIdTable

uint64_t StringIdTable::hash(std::string_view key) {
  // 8 bytes at a time, multiply-xorshift mixing; keys are short (tokens, words).
  uint64_t h = 0x9E3779B97F4A7C15ull ^ key.size();
  size_t i = 0;
  for (; i + 8 <= key.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, key.data() + i, 8);
    h = (h ^ word) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, key.data() + i, key.size() - i);
  h = (h ^ tail) * 0x94D049BB133111EBull;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 32);
}

void StringIdTable::reserve(size_t count) {
  size_t capacity = 16;
  while (capacity < count + count / 2 + 1) capacity *= 2;  // load factor below 2/3
  if (capacity <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  for (const Slot& entry : old) {
    if (entry.id < 0) continue;
    const uint64_t h = hash(std::string_view(arena_.data() + entry.offset, entry.length));
    size_t slot = h & mask_;
    while (slots_[slot].id >= 0) slot = (slot + 1) & mask_;
    slots_[slot] = entry;
  }
}

bool StringIdTable::insert(std::string_view key, int32_t id) {
  if (slots_.empty() || (count_ + 1) * 3 > slots_.size() * 2) reserve((count_ + 1) * 2);
  const uint64_t h = hash(key);
  const auto tag = static_cast<uint32_t>(h);
  size_t slot = h & mask_;
  for (;; slot = (slot + 1) & mask_) {
    const Slot& entry = slots_[slot];
    if (entry.id < 0) break;
    if (entry.tag == tag && entry.length == key.size() &&
        std::string_view(arena_.data() + entry.offset, entry.length) == key) {
      return false;
    }
  }
  if (arena_.size() + key.size() > UINT32_MAX) fail("tokenizer", "vocabulary too large");
  slots_[slot] =
      Slot{tag, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()), id};
  arena_.append(key);
  ++count_;
  return true;
}

// ---------------------------------------------------------------------------------------------
// MergeTable

void MergeTable::reserve(size_t count) {
  size_t capacity = 2;
  int bits = 1;
  while (capacity < count + count / 3 + 1) {  // load factor below 3/4
    capacity *= 2;
    ++bits;
  }
  slots_.assign(capacity, Entry{kEmpty, 0, 0});
  mask_ = capacity - 1;
  shift_ = 64 - bits;
}

void MergeTable::insert(int32_t left, int32_t right, int32_t rank, int32_t merged) {
  const uint64_t key = pack(left, right);
  for (uint64_t slot = hash(key);; slot = (slot + 1) & mask_) {
    Entry& entry = slots_[slot];
    if (entry.key == key || entry.key == kEmpty) {
      entry = Entry{key, rank, merged};
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Cache of word -> tokens, shared by the threads that encode with one tokenizer.

// Hash for std::string keys that also accepts std::string_view lookups without a copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};

struct BpeEncoder::Cache {
  std::shared_mutex mutex;
  std::unordered_map<std::string, std::vector<BpeToken>, StringHash, std::equal_to<>> words;

  bool lookup(std::string_view word, std::vector<BpeToken>& out) {
    std::shared_lock lock(mutex);
    const auto it = words.find(word);
    if (it == words.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }

  void store(std::string_view word, const BpeToken* tokens, size_t count) {
    std::unique_lock lock(mutex);
    // Clearing when full (rather than refusing new words) follows a stream whose
    // vocabulary drifts, e.g. a data set of several languages.
    if (words.size() >= kCacheCapacity) words.clear();
    words.emplace(std::string(word), std::vector<BpeToken>(tokens, tokens + count));
  }
};

BpeEncoder::BpeEncoder() : cache_(std::make_unique<Cache>()) {}
BpeEncoder::BpeEncoder(BpeEncoder&&) noexcept = default;
BpeEncoder& BpeEncoder::operator=(BpeEncoder&&) noexcept = default;
BpeEncoder::~BpeEncoder() = default;

// ---------------------------------------------------------------------------------------------
// Loading

bool split_bpe_merge(const nlohmann::json& merge, std::string_view& left, std::string_view& right) {
  if (merge.is_string()) {
    const std::string& text = merge.get_ref<const std::string&>();
    const size_t space = text.find(' ');
    if (space == std::string::npos) return false;
    left = std::string_view(text).substr(0, space);
    right = std::string_view(text).substr(space + 1);
    return true;
  }
  if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
    left = merge[0].get_ref<const std::string&>();
    right = merge[1].get_ref<const std::string&>();
    return true;
  }
  return false;
}

BpeEncoder BpeEncoder::from_json(const nlohmann::json& json, const std::string& origin) {
  const JsonField model(json, origin, "model");
  model.require_object();
  const auto type = model.optional_string("type");
  if (type && *type != "BPE") model.fail("type '" + *type + "' is not supported (only BPE)");

  // Options that change the algorithm: refuse what we do not implement rather than encode
  // differently from tokenizers.
  if (const auto dropout = model.find("dropout")) {
    if (!dropout->value().is_number()) dropout->fail("must be a number or null");
    if (dropout->value().get<double>() != 0.0) dropout->fail("other than null is not supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto value = model.optional_string(key);
    if (value && !value->empty()) model.get(key).fail("is not supported");
  }
  if (model.bool_or("byte_fallback", false))
    model.get("byte_fallback").fail("true is not supported");

  BpeEncoder bpe;
  bpe.fuse_unk_ = model.bool_or("fuse_unk", false);
  bpe.ignore_merges_ = model.bool_or("ignore_merges", false);

  // The loops below read the JSON directly and build field paths only for error messages:
  // Llama-3 has 128,000 tokens and 280,147 merges, and load time matters to every command.
  const JsonField vocab = model.get("vocab");
  vocab.require_object();
  std::vector<std::pair<const std::string*, int32_t>> entries;  // one pass over the map
  entries.reserve(vocab.value().size());
  int64_t max_id = -1;
  for (const auto& [token, id_json] : vocab.value().items()) {
    const bool integer = id_json.is_number_integer();
    const int64_t id = integer ? id_json.get<int64_t>() : -1;
    if (!integer || id < 0 || id > kMaxId) {
      JsonField(id_json, origin, "model.vocab['" + token + "']")
          .fail("must be an id in 0.." + format_count(kMaxId) + ", not " + id_json.dump());
    }
    max_id = std::max(max_id, id);
    entries.emplace_back(&token, static_cast<int32_t>(id));
  }
  bpe.tokens_.resize(static_cast<size_t>(max_id + 1));
  bpe.has_token_.assign(static_cast<size_t>(max_id + 1), 0);
  bpe.token_ids_.reserve(entries.size());
  bpe.byte_ids_.reserve(entries.size());
  for (const auto& [token, id] : entries) {
    if (bpe.has_token_[id]) {
      vocab.fail("gives id " + std::to_string(id) + " to both '" + bpe.tokens_[id] + "' and '" +
                 *token + "'");
    }
    bpe.tokens_[id] = *token;
    bpe.has_token_[id] = 1;
    bpe.token_ids_.insert(*token, id);
    // Tokens holding characters outside the byte-level alphabet can never come out of a
    // byte-level word, so they need no raw-bytes key.
    if (auto bytes = byte_level::decode(*token)) bpe.byte_ids_.insert(*bytes, id);
  }
  for (int b = 0; b < 256; ++b) {
    const char key = static_cast<char>(b);
    bpe.byte_token_[b] = bpe.byte_ids_.find(std::string_view(&key, 1)).value_or(-1);
  }

  if (const auto unk = model.optional_string("unk_token")) {
    bpe.unk_id_ = bpe.token_ids_.find(*unk);
    if (!bpe.unk_id_) model.get("unk_token").fail("'" + *unk + "' is not in the vocab");
  }

  const JsonField merges = model.get("merges");
  merges.require_array();
  const size_t merge_count = merges.value().size();
  if (merge_count > static_cast<size_t>(INT32_MAX)) merges.fail("has too many entries");
  bpe.merges_.reserve(merge_count);
  std::string merged;
  for (size_t rank = 0; rank < merge_count; ++rank) {
    std::string_view left, right;
    if (!split_bpe_merge(merges.value()[rank], left, right)) {
      merges.at(rank).fail("must be a string \"a b\" or a pair of strings [\"a\", \"b\"]");
    }
    const auto id_of = [&](std::string_view token) {
      const auto id = bpe.token_ids_.find(token);
      if (!id)
        merges.at(rank).fail("refers to '" + std::string(token) + "', which is not in the vocab");
      return *id;
    };
    const int32_t left_id = id_of(left);  // in order, so the error names the first unknown
    const int32_t right_id = id_of(right);
    merged.assign(left);
    merged.append(right);
    bpe.merges_.insert(left_id, right_id, static_cast<int32_t>(rank), id_of(merged));
  }
  return bpe;
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

std::optional<int32_t> BpeEncoder::token_to_id(std::string_view token) const {
  return token_ids_.find(token);
}

const std::string* BpeEncoder::id_to_token(int32_t id) const {
  if (id < 0 || id >= id_limit() || !has_token_[id]) return nullptr;
  return &tokens_[id];
}

// ---------------------------------------------------------------------------------------------
// Encoding

void BpeEncoder::encode_word(std::string_view word, std::vector<BpeToken>& out) const {
  const auto length = static_cast<uint32_t>(word.size());
  if (length == 0) return;
  // ignore_merges (Llama-3): a word that is itself a vocab entry is that one token, even when
  // the merges would have reached a different split.
  if (ignore_merges_) {
    if (const auto id = byte_ids_.find(word)) {
      out.push_back(BpeToken{*id, 0, length});
      return;
    }
  }
  if (length == 1) {
    merge_word(word, out);
    return;
  }
  const bool cacheable = length <= kCacheWordLimit;
  if (cacheable && cache_->lookup(word, out)) return;
  const size_t first = out.size();
  merge_word(word, out);
  if (cacheable) cache_->store(word, out.data() + first, out.size() - first);
}

void BpeEncoder::merge_word(std::string_view word, std::vector<BpeToken>& out,
                            MergeStrategy strategy) const {
  // One symbol per byte. A byte missing from the vocab becomes unk_token, or is dropped when
  // there is none (what tokenizers does; byte-level vocabularies hold all 256 bytes).
  thread_local std::vector<BpeToken> symbols;
  symbols.clear();
  for (uint32_t i = 0; i < word.size(); ++i) {
    int32_t id = byte_token_[static_cast<uint8_t>(word[i])];
    if (id < 0) {
      if (!unk_id_) continue;
      id = *unk_id_;
      if (fuse_unk_ && !symbols.empty() && symbols.back().id == id && symbols.back().end == i) {
        symbols.back().end = i + 1;
        continue;
      }
    }
    symbols.push_back(BpeToken{id, i, i + 1});
  }
  if (strategy == MergeStrategy::Auto) {
    strategy = symbols.size() <= kLinearScanLimit ? MergeStrategy::LinearScan : MergeStrategy::Heap;
  }
  if (strategy == MergeStrategy::LinearScan && symbols.size() <= kLinearScanLimit) {
    merge_symbols_small(symbols);
  } else {
    merge_symbols_heap(symbols);
  }
  out.insert(out.end(), symbols.begin(), symbols.end());
}

void BpeEncoder::merge_symbols_small(std::vector<BpeToken>& symbols) const {
  constexpr int32_t kNone = INT32_MAX;
  // ranks[i]: rank of merging symbols[i] and symbols[i + 1] (kNone when no merge applies).
  int32_t ranks[kLinearScanLimit];
  size_t count = symbols.size();
  const auto rank_at = [&](size_t i) {
    const MergeTable::Entry* entry = merges_.find(symbols[i].id, symbols[i + 1].id);
    return entry ? entry->rank : kNone;
  };
  for (size_t i = 0; i + 1 < count; ++i) ranks[i] = rank_at(i);
  while (count > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < count; ++i) {
      if (ranks[i] < ranks[best]) best = i;  // strict: the leftmost of equal ranks wins
    }
    if (ranks[best] == kNone) break;
    symbols[best].id = merges_.find(symbols[best].id, symbols[best + 1].id)->merged;
    symbols[best].end = symbols[best + 1].end;
    for (size_t i = best + 1; i + 1 < count; ++i) symbols[i] = symbols[i + 1];
    for (size_t i = best + 1; i + 2 < count; ++i) ranks[i] = ranks[i + 1];
    --count;
    if (best > 0) ranks[best - 1] = rank_at(best - 1);
    if (best + 1 < count) ranks[best] = rank_at(best);
  }
  symbols.resize(count);
}

void BpeEncoder::merge_symbols_heap(std::vector<BpeToken>& symbols) const {
  const auto count = static_cast<int32_t>(symbols.size());
  std::vector<int32_t> prev(count), next(count);
  for (int32_t i = 0; i < count; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < count ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int32_t pos;          // index of the left symbol; symbols keep their index when merged into
    int32_t left, right;  // ids it was computed for: a changed pair makes it stale
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto push = [&](int32_t pos) {
    const int32_t right = next[pos];
    if (right < 0) return;
    if (const auto* entry = merges_.find(symbols[pos].id, symbols[right].id)) {
      queue.push(Candidate{entry->rank, pos, symbols[pos].id, symbols[right].id});
    }
  };
  for (int32_t i = 0; i + 1 < count; ++i) push(i);
  std::vector<uint8_t> alive(count, 1);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    const int32_t right = next[top.pos];
    if (!alive[top.pos] || right < 0 || symbols[top.pos].id != top.left ||
        symbols[right].id != top.right) {
      continue;
    }
    symbols[top.pos].id = merges_.find(top.left, top.right)->merged;
    symbols[top.pos].end = symbols[right].end;
    alive[right] = 0;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    if (prev[top.pos] >= 0) push(prev[top.pos]);
    push(top.pos);
  }
  size_t kept = 0;
  for (int32_t i = 0; i < count; ++i) {
    if (alive[i]) symbols[kept++] = symbols[i];
  }
  symbols.resize(kept);
}

}  // namespace ll
