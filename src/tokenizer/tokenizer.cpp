// Tokenizer (see tokenizer.h): loading, and the encode/decode passes of TokenizerPipeline
// (see pipeline.h). Offsets are byte-accurate: a token covers exactly the input bytes its
// own bytes came from, so the pieces of a character split over several tokens (an emoji as
// three byte tokens) get disjoint ranges inside that character, where `tokenizers` would
// give each the whole character.
#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "core/file.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/utf8.h"

namespace ll {

// ---------------------------------------------------------------------------------------------
// TokenizerPipeline: encode / decode

namespace {

// Buffers reused across calls on one thread (encoding is called per document, often short).
struct EncodeScratch {
  SplitScratch split;
  std::vector<Segment> segments;
  std::vector<Piece> pieces;
  std::vector<BpeToken> tokens;
  std::string word;
};

// The range [begin, end) of `text` without leading/trailing White_Space (for added tokens
// whose lstrip/rstrip took in spaces; ByteLevel trim_offsets leaves those out of offsets).
std::pair<uint32_t, uint32_t> trim_white_space(std::string_view text, uint32_t begin,
                                               uint32_t end) {
  while (begin < end) {
    const size_t length = utf8::sequence_length(text.substr(0, end), begin);
    if (length == 0 || !utf8::is_white_space(utf8::decode_at(text, begin, length))) break;
    begin += static_cast<uint32_t>(length);
  }
  while (end > begin) {
    uint32_t start = end - 1;
    while (start > begin && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
    const size_t length = utf8::sequence_length(text.substr(0, end), start);
    if (length != end - start || !utf8::is_white_space(utf8::decode_at(text, start, length))) {
      break;
    }
    end = start;
  }
  return {begin, end};
}

}  // namespace

void TokenizerPipeline::encode(std::string_view text, bool add_special, std::vector<int32_t>& ids,
                               std::vector<std::pair<uint32_t, uint32_t>>* offsets) const {
  if (text.size() >= UINT32_MAX) {
    fail("tokenizer", "cannot encode " + std::to_string(text.size()) +
                          " bytes at once (offsets are 32-bit); split the text");
  }
  thread_local EncodeScratch scratch;
  const auto add_template_ids = [&](const std::vector<int32_t>& template_ids) {
    for (int32_t id : template_ids) {
      ids.push_back(id);
      if (offsets) offsets->emplace_back(0, 0);  // as tokenizers: added by the post-processor
    }
  };
  if (add_special) add_template_ids(prefix_ids);

  scratch.segments.clear();
  added.split(text, scratch.segments);
  for (const Segment& segment : scratch.segments) {
    if (segment.added_id >= 0) {
      ids.push_back(segment.added_id);
      if (offsets) {
        offsets->push_back(trim_offsets ? trim_white_space(text, segment.begin, segment.end)
                                        : std::pair{segment.begin, segment.end});
      }
      continue;
    }
    scratch.pieces.clear();
    pre_tokenizer.split(text, segment.begin, segment.end, scratch.split, scratch.pieces);
    for (const Piece& piece : scratch.pieces) {
      std::string_view word = text.substr(piece.begin, piece.end - piece.begin);
      if (piece.prefix_space) {
        scratch.word.assign(1, ' ');
        scratch.word.append(word);
        word = scratch.word;
      }
      scratch.tokens.clear();
      model.encode_word(word, scratch.tokens);
      for (const BpeToken& token : scratch.tokens) {
        ids.push_back(token.id);
        if (!offsets) continue;
        uint32_t begin = token.begin;
        uint32_t end = token.end;
        if (trim_offsets) {
          while (begin < end && word[begin] == ' ') ++begin;
          while (end > begin && word[end - 1] == ' ') --end;
        }
        // Word byte w is text byte piece.begin + w, or + w - 1 after a virtual prefix space
        // (which itself maps to an empty range at the piece's start).
        const auto to_text = [&](uint32_t w) {
          if (!piece.prefix_space) return piece.begin + w;
          return w == 0 ? piece.begin : piece.begin + w - 1;
        };
        offsets->emplace_back(to_text(begin), to_text(end));
      }
    }
  }
  if (add_special) add_template_ids(suffix_ids);
}

std::string TokenizerPipeline::decode_bytes(const int32_t* ids, size_t count,
                                            bool skip_special) const {
  std::string bytes;
  for (size_t i = 0; i < count; ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= static_cast<int32_t>(kinds.size()) || kinds[id] == IdKind::None) {
      fail("tokenizer", "cannot decode id " + std::to_string(id) + ": " + origin +
                            " has no token with that id (vocab size " +
                            std::to_string(kinds.size()) + ")");
    }
    if (skip_special && kinds[id] == IdKind::Special) continue;
    bytes.append(decoded_bytes, decoded_offsets[id], decoded_offsets[id + 1] - decoded_offsets[id]);
  }
  return bytes;
}

void TokenizerPipeline::build_id_tables() {
  int32_t limit = model.id_limit();
  for (const AddedToken& token : added.tokens()) limit = std::max(limit, token.id + 1);
  kinds.assign(static_cast<size_t>(limit), IdKind::None);
  std::vector<const std::string*> strings(static_cast<size_t>(limit), nullptr);
  for (int32_t id = 0; id < model.id_limit(); ++id) {
    if (const std::string* token = model.id_to_token(id)) {
      kinds[id] = IdKind::Model;
      strings[id] = token;
    }
  }
  for (const AddedToken& token : added.tokens()) {
    kinds[token.id] = token.special ? IdKind::Special : IdKind::Added;
    strings[token.id] = &token.content;
  }
  decoded_bytes.clear();
  decoded_offsets.assign(static_cast<size_t>(limit) + 1, 0);
  for (int32_t id = 0; id < limit; ++id) {
    decoded_offsets[id] = static_cast<uint32_t>(decoded_bytes.size());
    // Added tokens pass through the ByteLevel decoder too, as in tokenizers' decode.
    if (strings[id]) decoded_bytes += byte_level::decode_token(*strings[id]);
  }
  decoded_offsets[limit] = static_cast<uint32_t>(decoded_bytes.size());
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

struct Tokenizer::Impl {
  TokenizerPipeline pipeline;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) file = path / "tokenizer.json";
  if (!std::filesystem::exists(file, error)) {
    fail("tokenizer", file.string() + ": not found (expected a tokenizer.json or its folder)");
  }
  const std::string text = read_file(file);
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer", file.string() + ": not valid JSON: " + e.what());
  }
  return from_json(json, file.string());
}

Tokenizer Tokenizer::from_json(const nlohmann::json& json, const std::string& origin) {
  try {
    return Tokenizer(std::make_unique<Impl>(Impl{parse_tokenizer_json(json, origin)}));
  } catch (const nlohmann::json::exception& e) {
    // Field reads check types first; this catches what slipped through, still naming the file.
    fail("tokenizer", origin + ": " + e.what());
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, AddSpecialTokens add) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  impl_->pipeline.encode(text, add == AddSpecialTokens::Yes, ids, nullptr);
  return ids;
}

Encoding Tokenizer::encode_with_offsets(std::string_view text, AddSpecialTokens add) const {
  Encoding encoding;
  impl_->pipeline.encode(text, add == AddSpecialTokens::Yes, encoding.ids, &encoding.offsets);
  return encoding;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, DecodeSpecial special) const {
  // Tokens may end inside a character; what stays invalid becomes U+FFFD, as tokenizers'
  // ByteLevel decoder (String::from_utf8_lossy) does.
  return utf8::repair_lossy(decode_bytes(ids, special));
}

std::string Tokenizer::decode_bytes(std::span<const int32_t> ids, DecodeSpecial special) const {
  return impl_->pipeline.decode_bytes(ids.data(), ids.size(), special == DecodeSpecial::Skip);
}

int32_t Tokenizer::vocab_size() const {
  return static_cast<int32_t>(impl_->pipeline.kinds.size());
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const auto id = impl_->pipeline.added.find_content(token)) return id;
  return impl_->pipeline.model.token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (const AddedToken* token = impl_->pipeline.added.find_id(id)) return token->content;
  if (const std::string* token = impl_->pipeline.model.id_to_token(id)) return *token;
  fail("tokenizer", impl_->pipeline.origin + ": no token has id " + std::to_string(id));
}

bool Tokenizer::is_special(int32_t id) const {
  const auto& kinds = impl_->pipeline.kinds;
  return id >= 0 && id < static_cast<int32_t>(kinds.size()) &&
         kinds[id] == TokenizerPipeline::IdKind::Special;
}

std::optional<int32_t> Tokenizer::bos_id() const {
  const auto& prefix = impl_->pipeline.prefix_ids;
  if (prefix.empty()) return std::nullopt;
  return prefix.front();
}

}  // namespace ll
