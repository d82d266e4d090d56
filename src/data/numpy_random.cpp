// numpy's SeedSequence -> PCG64 -> Generator.permutation, reimplemented from the algorithms in
// numpy/random/bit_generator.pyx, src/pcg64/pcg64.h and _generator.pyx (see numpy_random.h for
// why we match numpy exactly). Checked against tests/fixtures/numpy_permutation.json.
#include "data/numpy_random.h"

#include <numeric>
#include <utility>

namespace ll {

namespace {

// -Wpedantic rejects __int128 without __extension__; GCC and Clang both provide it.
__extension__ typedef unsigned __int128 u128;

u128 make_u128(uint64_t high, uint64_t low) {
  return (static_cast<u128>(high) << 64) | low;
}
uint64_t high_of(u128 x) {
  return static_cast<uint64_t>(x >> 64);
}
uint64_t low_of(u128 x) {
  return static_cast<uint64_t>(x);
}

// ---- SeedSequence constants (bit_generator.pyx; from O'Neill's seed_seq alternative) ----
constexpr uint32_t kInitA = 0x43b0d7e5;
constexpr uint32_t kMultA = 0x931e8875;
constexpr uint32_t kInitB = 0x8b51f9dd;
constexpr uint32_t kMultB = 0x58f38ded;
constexpr uint32_t kMixMultL = 0xca01f9dd;
constexpr uint32_t kMixMultR = 0x4973f715;
constexpr unsigned kXShift = 16;  // half the word size

// Hashes one word; the multiplier advances on every call, so the call order matters.
uint32_t hashmix(uint32_t value, uint32_t& hash_const) {
  value ^= hash_const;
  hash_const *= kMultA;
  value *= hash_const;
  value ^= value >> kXShift;
  return value;
}

uint32_t mix(uint32_t x, uint32_t y) {
  uint32_t result = kMixMultL * x - kMixMultR * y;
  result ^= result >> kXShift;
  return result;
}

// `_int_to_uint32_array`: the integer's 32-bit words, lowest first, no leading zero words
// (but 0 is one word [0]).
std::vector<uint32_t> entropy_words(uint64_t entropy) {
  std::vector<uint32_t> words{static_cast<uint32_t>(entropy)};
  if (entropy >> 32) words.push_back(static_cast<uint32_t>(entropy >> 32));
  return words;
}

// ---- PCG64 (pcg64.h: PCG_DEFAULT_MULTIPLIER_128) ----
const u128 kPcgMultiplier = make_u128(2549297995355413924ULL, 4865540595714422341ULL);

uint64_t rotate_right(uint64_t value, unsigned rot) {
  return (value >> rot) | (value << ((-rot) & 63u));
}

}  // namespace

SeedSequence::SeedSequence(uint64_t entropy) {
  // `mix_entropy`: hash the entropy words into the pool (zeros past the end), then mix every
  // pool word into every other so late words affect early ones, then fold in any entropy words
  // beyond the pool size (never reached for a 64-bit seed, kept for fidelity).
  const std::vector<uint32_t> words = entropy_words(entropy);
  uint32_t hash_const = kInitA;
  for (size_t i = 0; i < kPoolSize; ++i) {
    pool_[i] = hashmix(i < words.size() ? words[i] : 0u, hash_const);
  }
  for (size_t src = 0; src < kPoolSize; ++src) {
    for (size_t dst = 0; dst < kPoolSize; ++dst) {
      if (src != dst) pool_[dst] = mix(pool_[dst], hashmix(pool_[src], hash_const));
    }
  }
  for (size_t src = kPoolSize; src < words.size(); ++src) {
    for (size_t dst = 0; dst < kPoolSize; ++dst) {
      pool_[dst] = mix(pool_[dst], hashmix(words[src], hash_const));
    }
  }
}

std::vector<uint32_t> SeedSequence::generate_state_u32(size_t n_words) const {
  // Cycles through the pool, hashing each word with a multiplier that advances per word.
  std::vector<uint32_t> out(n_words);
  uint32_t hash_const = kInitB;
  for (size_t i = 0; i < n_words; ++i) {
    uint32_t value = pool_[i % kPoolSize];
    value ^= hash_const;
    hash_const *= kMultB;
    value *= hash_const;
    value ^= value >> kXShift;
    out[i] = value;
  }
  return out;
}

std::vector<uint64_t> SeedSequence::generate_state_u64(size_t n_words) const {
  const std::vector<uint32_t> words = generate_state_u32(2 * n_words);
  std::vector<uint64_t> out(n_words);
  for (size_t i = 0; i < n_words; ++i) {
    out[i] = static_cast<uint64_t>(words[2 * i]) | (static_cast<uint64_t>(words[2 * i + 1]) << 32);
  }
  return out;
}

Pcg64::Pcg64(uint64_t seed) {
  // PCG64.__init__: 4 uint64 words from SeedSequence; words 0,1 are the initial state (high,
  // low) and words 2,3 the stream selector. pcg_setseq_128_srandom_r then sets
  // inc = 2*initseq + 1 (odd, as a full-period LCG needs), steps, adds the state, steps again.
  const std::vector<uint64_t> words = SeedSequence(seed).generate_state_u64(4);
  const u128 initstate = make_u128(words[0], words[1]);
  const u128 initseq = make_u128(words[2], words[3]);
  const u128 inc = (initseq << 1) | 1u;
  inc_high_ = high_of(inc);
  inc_low_ = low_of(inc);
  state_high_ = state_low_ = 0;
  step();
  const u128 state = make_u128(state_high_, state_low_) + initstate;
  state_high_ = high_of(state);
  state_low_ = low_of(state);
  step();
}

void Pcg64::step() {
  const u128 state =
      make_u128(state_high_, state_low_) * kPcgMultiplier + make_u128(inc_high_, inc_low_);
  state_high_ = high_of(state);
  state_low_ = low_of(state);
}

uint64_t Pcg64::next_uint64() {
  // XSL-RR of the state *after* stepping (the 128-bit PCG variants step first).
  step();
  return rotate_right(state_high_ ^ state_low_, static_cast<unsigned>(state_high_ >> 58));
}

uint32_t Pcg64::next_uint32() {
  if (has_uint32_) {
    has_uint32_ = false;
    return buffered_uint32_;
  }
  const uint64_t next = next_uint64();
  has_uint32_ = true;
  buffered_uint32_ = static_cast<uint32_t>(next >> 32);
  return static_cast<uint32_t>(next);
}

Pcg64State Pcg64::state() const {
  return {state_high_, state_low_, inc_high_, inc_low_};
}

uint64_t numpy_random_interval(Pcg64& rng, uint64_t max) {
  if (max == 0) return 0;  // no draw at all
  uint64_t mask = max;
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  uint64_t value = 0;
  if (max <= 0xffffffffULL) {
    do {
      value = rng.next_uint32() & mask;
    } while (value > max);
  } else {
    do {
      value = rng.next_uint64() & mask;
    } while (value > max);
  }
  return value;
}

std::vector<uint64_t> numpy_permutation(uint64_t n, uint64_t seed) {
  // Generator.permutation(int) = arange(n) then shuffle's `_shuffle_raw` with first = 1:
  // for i = n-1 down to 1, swap element i with a uniform j in [0, i].
  std::vector<uint64_t> values(n);  // [n] u64
  std::iota(values.begin(), values.end(), uint64_t{0});
  Pcg64 rng(seed);
  for (uint64_t i = n; i-- > 1;) {
    const uint64_t j = numpy_random_interval(rng, i);
    std::swap(values[i], values[j]);
  }
  return values;
}

}  // namespace ll
