// GPT-2's byte-level alphabet (`bytes_to_unicode` in openai/gpt-2 encoder.py, `ByteLevel` in
// Hugging Face tokenizers): each of the 256 byte values is shown as one printable code point,
// so a vocabulary of strings can hold every byte sequence. Printable Latin-1 bytes map to
// themselves; the others (controls, space, 0x7F-0xA0, 0xAD) to U+0100 upwards, e.g.
// ' ' -> 'Ġ' (U+0120), '\n' -> 'Ċ' (U+010A).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ll::byte_level {

char32_t byte_to_char(uint8_t byte);

// The byte a code point of the alphabet stands for, or -1 for code points outside it.
int char_to_byte(char32_t code_point);

// Raw bytes -> their byte-level string (UTF-8 of the mapped code points).
std::string encode(std::string_view bytes);

// A byte-level string -> the raw bytes, or nullopt when it is not valid UTF-8 or holds a code
// point outside the alphabet.
std::optional<std::string> decode(std::string_view text);

// What the ByteLevel decoder of `tokenizers` makes of one token: its raw bytes when every
// character belongs to the alphabet, else the token's own UTF-8 bytes unchanged (added tokens
// such as "<|eot_id|>" are printable ASCII and so decode to themselves either way).
std::string decode_token(std::string_view token);

}  // namespace ll::byte_level
