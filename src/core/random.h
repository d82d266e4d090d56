// The one 64-bit mixer behind every deterministic draw that is ours (dropout masks, sampling
// seeds, micro-batch seeds, random weights, the built-in corpus): SplitMix64 (Steele, Lea and
// Flood, "Fast splittable pseudorandom number generators", 2014), fully specified integer
// arithmetic, so every platform draws the same numbers. Draws that must match another
// library (numpy's shuffle, std::mt19937_64) use that library's generator instead.
#pragma once

#include <cstdint>
#include <string_view>

namespace ll {

inline constexpr uint64_t kSplitMix64Gamma = 0x9e3779b97f4a7c15ull;  // 2^64 / golden ratio

// SplitMix64's output function: a bijective, well-mixed hash of one 64-bit word.
constexpr uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The output of a SplitMix64 stream whose state was `x` before the step (a hash of x).
constexpr uint64_t splitmix64(uint64_t x) {
  return splitmix64_mix(x + kSplitMix64Gamma);
}

// A SplitMix64 stream: the k-th draw (from 0) is splitmix64(seed + k·gamma).
class SplitMix64 {
 public:
  explicit constexpr SplitMix64(uint64_t seed) : state_(seed) {}
  constexpr uint64_t next() { return splitmix64_mix(state_ += kSplitMix64Gamma); }

 private:
  uint64_t state_;
};

// A uniform double in [0, 1) from the top 53 bits of a 64-bit draw.
constexpr double unit_interval(uint64_t bits) {
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

// FNV-1a, 64 bits: a stable hash of a name (the seed of a tensor's random values).
constexpr uint64_t fnv1a64(std::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (const char c : text) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

}  // namespace ll
