// Small text helpers shared by every layer: human-readable numbers and byte counts.
#pragma once

#include <cstdint>
#include <string>

namespace ll {

std::string format_count(uint64_t value);  // 9100000 -> "9,100,000"
std::string format_bytes(uint64_t bytes);  // 1536 -> "1.5 KiB"
std::string format_number(double value);   // printf "%g": 1e-05, 0.5, 64

}  // namespace ll
