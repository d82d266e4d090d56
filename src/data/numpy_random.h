// numpy's default random generator, bit for bit, as far as a dataset shuffle needs it:
// `numpy.random.default_rng(seed).permutation(n)`.
//
// Why: Hugging Face datasets orders rows in `Dataset.shuffle(seed=...)` and
// `train_test_split(seed=...)` with `np.random.default_rng(seed).permutation(len(self))`
// (datasets/arrow_dataset.py). Recipes shuffle with seed 23 and then take the first rows as
// eval; matching numpy exactly means our train/eval split is the same rows the Python stack
// would pick for that seed, not merely "a" shuffle.
//
// The chain, each stage exposed so a test can pin it (tests/fixtures/numpy_permutation.json,
// from scripts/fixtures/make_numpy_permutation_fixture.py with pinned numpy):
//   SeedSequence(seed)         numpy/random/bit_generator.pyx: O'Neill's seed_seq variant,
//                              pool of 4 uint32 words, hashmix/mix constants.
//   PCG64(seed)                numpy/random/src/pcg64/pcg64.h: PCG XSL-RR 128/64 (step, then
//                              output the new state); seeded from SeedSequence's 4 uint64 words.
//   Generator.permutation(n)   numpy/random/_generator.pyx: arange(n) then Fisher-Yates from the
//                              back, j = random_interval(i) (masked rejection, not Lemire), which
//                              draws the *buffered 32-bit* halves of PCG64 outputs when i < 2^32.
// numpy's Generator promises no stream compatibility across versions; the fixture records the
// version it was made with.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ll {

// `numpy.random.SeedSequence(entropy)` for a single non-negative integer entropy (no spawn key,
// pool_size 4), which is what `default_rng(int)` builds.
class SeedSequence {
 public:
  static constexpr size_t kPoolSize = 4;

  explicit SeedSequence(uint64_t entropy);

  // `SeedSequence.pool`: the mixed entropy.
  const std::array<uint32_t, kPoolSize>& pool() const { return pool_; }

  // `generate_state(n_words, np.uint32)`.
  std::vector<uint32_t> generate_state_u32(size_t n_words) const;
  // `generate_state(n_words, np.uint64)`: 2*n_words uint32 words, paired low word first
  // (numpy views them as little-endian uint64 on every platform).
  std::vector<uint64_t> generate_state_u64(size_t n_words) const;

 private:
  std::array<uint32_t, kPoolSize> pool_{};
};

// The 128-bit LCG state and odd increment, as (high, low) 64-bit halves; this is what
// `PCG64.state['state']` and `['inc']` print as Python ints.
struct Pcg64State {
  uint64_t state_high = 0;
  uint64_t state_low = 0;
  uint64_t inc_high = 0;
  uint64_t inc_low = 0;
};

// `numpy.random.PCG64(seed)`: 128-bit LCG with the XSL-RR output, plus numpy's one-word
// buffer that serves a 64-bit draw as two 32-bit draws (low half first).
class Pcg64 {
 public:
  explicit Pcg64(uint64_t seed);

  // `pcg64_next64`, what `random_raw()` returns.
  uint64_t next_uint64();
  // `pcg64_next32`: the low half of a fresh 64-bit draw, keeping the high half for the next call.
  uint32_t next_uint32();

  Pcg64State state() const;

 private:
  void step();

  uint64_t state_high_ = 0, state_low_ = 0;  // 128-bit LCG state, split so the header stays
  uint64_t inc_high_ = 0, inc_low_ = 0;      // free of the non-standard __int128
  bool has_uint32_ = false;
  uint32_t buffered_uint32_ = 0;
};

// numpy's `random_interval(bitgen, max)`: uniform in [0, max] by masking to the smallest
// all-ones mask >= max and rejecting values above max; 32-bit draws while max < 2^32.
uint64_t numpy_random_interval(Pcg64& rng, uint64_t max);

// `numpy.random.default_rng(seed).permutation(n)`: a permutation of 0..n-1.
std::vector<uint64_t> numpy_permutation(uint64_t n, uint64_t seed);

}  // namespace ll
