// UTF-8 helpers for the tokenizer: validation (the regex engine must only see valid UTF-8),
// code point decoding/encoding, Unicode White_Space, and lossy repair of decoded bytes the way
// Rust's String::from_utf8_lossy does it (what Hugging Face `tokenizers` returns from decode).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ll::utf8 {

// Length (1-4) of the well-formed UTF-8 sequence starting at text[pos], or 0 when the bytes
// there are not one (stray continuation byte, overlong form, surrogate, > U+10FFFF, truncated).
size_t sequence_length(std::string_view text, size_t pos);

// Length (1-4) of the well-formed UTF-8 sequence that `text` ends with, or 0 when its last
// bytes are not one (empty, a stray continuation byte, a truncated or ill-formed sequence):
// sequence_length read backwards.
size_t last_sequence_length(std::string_view text);

// Number of leading bytes of `text` that form valid UTF-8.
size_t valid_prefix_length(std::string_view text);

// Length of the run of invalid bytes starting at text[pos]: up to the next byte that starts a
// well-formed sequence (or the end).
size_t invalid_run_length(std::string_view text, size_t pos);

// Decodes the well-formed sequence of `length` bytes at text[pos] (see sequence_length).
char32_t decode_at(std::string_view text, size_t pos, size_t length);

void append(std::string& out, char32_t code_point);

// The Unicode White_Space property (what `\s` means in Oniguruma and Rust's regex).
bool is_white_space(char32_t code_point);

// `bytes` with every ill-formed subsequence replaced by U+FFFD, one replacement per maximal
// subpart (Unicode's recommended practice, which Rust's from_utf8_lossy follows).
std::string repair_lossy(std::string_view bytes);

}  // namespace ll::utf8
