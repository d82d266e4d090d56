// See byte_level.h.
#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace ll::byte_level {

namespace {

struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 0x144> to_byte{};  // every mapped code point is below U+0144
};

// bytes_to_unicode(): bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF keep their value; the other 68
// bytes, in increasing order, take U+0100, U+0101, ...
Tables build_tables() {
  Tables tables;
  tables.to_byte.fill(-1);
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool keeps = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const char32_t c = keeps ? static_cast<char32_t>(b) : next++;
    tables.to_char[b] = c;
    tables.to_byte[c] = static_cast<int16_t>(b);
  }
  return tables;
}

const Tables& tables() {
  static const Tables instance = build_tables();
  return instance;
}

}  // namespace

char32_t byte_to_char(uint8_t byte) {
  return tables().to_char[byte];
}

int char_to_byte(char32_t cp) {
  return cp < tables().to_byte.size() ? tables().to_byte[cp] : -1;
}

std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char b : bytes) utf8::append(out, byte_to_char(static_cast<uint8_t>(b)));
  return out;
}

std::optional<std::string> decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t length = utf8::sequence_length(text, pos);
    if (length == 0) return std::nullopt;
    const int byte = char_to_byte(utf8::decode_at(text, pos, length));
    if (byte < 0) return std::nullopt;
    out.push_back(static_cast<char>(byte));
    pos += length;
  }
  return out;
}

std::string decode_token(std::string_view token) {
  if (auto bytes = decode(token)) return std::move(*bytes);
  return std::string(token);
}

}  // namespace ll::byte_level
