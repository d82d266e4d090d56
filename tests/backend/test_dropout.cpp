// Counter-based dropout (backend/cpu/dropout.h): the keep rate is 1 - p within a binomial
// bound, kept elements are scaled by dropout_scale(p) = 1/(1-p) in fp32, the same key gives the
// same mask (what gradient checkpointing relies on), and the backward applies exactly the forward's
// mask.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cpu/dropout.h"
#include "core/error.h"

namespace ll::cpu {
namespace {

TEST(Dropout, KeepRateScaleAndDeterminism) {
  const int64_t n = 200000;
  const double p = 0.3;
  std::vector<float> in(static_cast<size_t>(n), 2.0f), out(in.size()), again(in.size());
  dropout_forward(out.data(), in.data(), n, p, 42);
  dropout_forward(again.data(), in.data(), n, p, 42);
  int64_t kept = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_EQ(out[i], again[i]) << "element " << i;
    if (out[i] != 0.0f) {
      ++kept;
      ASSERT_EQ(out[i], 2.0f * dropout_scale(p));
      ASSERT_FLOAT_EQ(out[i], static_cast<float>(2.0 / (1.0 - p)));
    }
  }
  // Binomial(n, 0.7): standard deviation sqrt(n p (1-p)) ≈ 205; 6 sigma never fails by chance.
  const double sigma = std::sqrt(n * p * (1 - p));
  EXPECT_NEAR(static_cast<double>(kept), n * (1 - p), 6 * sigma);

  std::vector<float> other(in.size());
  dropout_forward(other.data(), in.data(), n, p, 43);
  int64_t differ = 0;
  for (size_t i = 0; i < out.size(); ++i) differ += (out[i] != 0.0f) != (other[i] != 0.0f);
  // Independent masks differ where exactly one keeps: expected 2 p (1-p) n = 84,000.
  EXPECT_GT(differ, n / 4);
}

TEST(Dropout, BackwardUsesTheForwardMask) {
  const int64_t n = 1000;
  const double p = 0.5;
  std::vector<float> ones(static_cast<size_t>(n), 1.0f), mask(ones.size());
  dropout_forward(mask.data(), ones.data(), n, p, 7);
  std::vector<float> dy(ones.size()), dx(ones.size(), 10.0f);
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = static_cast<float>(i) * 0.01f;
  dropout_backward(dx.data(), dy.data(), n, p, 7, Accumulate::Yes);
  for (size_t i = 0; i < dx.size(); ++i) {
    // dropout is linear: d/dx (x · m / (1-p)) = m / (1-p), the forward of ones.
    ASSERT_FLOAT_EQ(dx[i], 10.0f + dy[i] * mask[i]) << "element " << i;
  }
}

TEST(Dropout, AColumnWindowDrawsTheWholeTensorsMask) {
  // A tensor-parallel rank holding columns [4, 7) of a [5, 12] activation gets exactly those
  // columns of the whole tensor's mask, forward and backward.
  const int64_t rows = 5, cols = 12, first = 4, width = 3;
  const double p = 0.4;
  std::vector<float> whole_in(static_cast<size_t>(rows * cols)), whole(whole_in.size());
  for (size_t i = 0; i < whole_in.size(); ++i) whole_in[i] = 1.0f + static_cast<float>(i);
  dropout_forward(whole.data(), whole_in.data(), rows * cols, p, 11);
  std::vector<float> part_in, part(static_cast<size_t>(rows * width));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = first; c < first + width; ++c) part_in.push_back(whole_in[r * cols + c]);
  }
  const DropoutWindow window{width, cols, first};
  dropout_forward(part.data(), part_in.data(), rows * width, p, 11, window);
  std::vector<float> d_part(part.size(), 0.0f);
  dropout_backward(d_part.data(), part_in.data(), rows * width, p, 11, Accumulate::No, window);
  int64_t dropped = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < width; ++c) {
      const float want = whole[r * cols + first + c];
      ASSERT_EQ(part[r * width + c], want) << "row " << r << " column " << first + c;
      ASSERT_EQ(d_part[r * width + c], want);  // dy = the input: the same mask and scale
      dropped += want == 0.0f;
    }
  }
  EXPECT_GT(dropped, 0);  // the window sees dropped and kept elements
  EXPECT_LT(dropped, rows * width);
}

TEST(Dropout, EveryElementFollowsDropoutKeeps) {
  // The kernels draw masks 16 at a time where the CPU has AVX-512: each element must still be
  // exactly `dropout_keeps(key, index, p) ? x · dropout_scale(p) : 0`, for lengths that leave
  // tails, probabilities at the edges, windows (one across index 2³², where the kernel splits),
  // and accumulation.
  for (const double p : {0.0, 0.05, 0.5, 0.999}) {
    for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{29}, int64_t{70001}}) {
      std::vector<float> in(static_cast<size_t>(n)), out(in.size());
      for (size_t i = 0; i < in.size(); ++i) in[i] = 0.25f + static_cast<float>(i % 97) * 0.37f;
      dropout_forward(out.data(), in.data(), n, p, 0x5eedull + static_cast<uint64_t>(n));
      std::vector<float> acc(in.size(), 3.0f);
      dropout_backward(acc.data(), in.data(), n, p, 0x5eedull + static_cast<uint64_t>(n),
                       Accumulate::Yes);
      const float scale = dropout_scale(p);
      for (int64_t i = 0; i < n; ++i) {
        const bool keep = dropout_keeps(0x5eedull + static_cast<uint64_t>(n), i, p);
        const float want = keep ? in[i] * scale : 0.0f;
        ASSERT_EQ(out[i], want) << "p " << p << " n " << n << " element " << i;
        ASSERT_EQ(acc[i], 3.0f + want) << "p " << p << " n " << n << " element " << i;
      }
    }
  }
  struct Window {
    int64_t rows, cols, first, width;
  };
  const int64_t two_32 = int64_t{1} << 32;
  for (const Window w : {Window{9, 1000, 333, 21}, Window{3, 2 * two_32, two_32 - 20, 45}}) {
    std::vector<float> in(static_cast<size_t>(w.rows * w.width), 1.5f), out(in.size());
    dropout_forward(out.data(), in.data(), w.rows * w.width, 0.3, 99,
                    DropoutWindow{w.width, w.cols, w.first});
    for (int64_t r = 0; r < w.rows; ++r) {
      for (int64_t c = 0; c < w.width; ++c) {
        const bool keep = dropout_keeps(99, r * w.cols + w.first + c, 0.3);
        ASSERT_EQ(out[r * w.width + c], keep ? 1.5f * dropout_scale(0.3) : 0.0f)
            << "row " << r << " column " << c << " of " << w.cols;
      }
    }
  }
}

TEST(Dropout, MasksOfNeighbouringKeysAndIndicesAreIndependent) {
  // Masks of keys k and k+1 (the model's keys differ by layer and target) and of neighbouring
  // elements agree as often as independent coins do: P(both kept) = (1-p)² within 6 sigma.
  const int64_t n = 200000;
  const double p = 0.5;
  int64_t both_keys = 0, both_neighbours = 0;
  for (int64_t i = 0; i < n; ++i) {
    both_keys += dropout_keeps(1000, i, p) && dropout_keeps(1001, i, p);
    both_neighbours += dropout_keeps(1000, 2 * i, p) && dropout_keeps(1000, 2 * i + 1, p);
  }
  const double q = (1 - p) * (1 - p), sigma = std::sqrt(n * q * (1 - q));
  EXPECT_NEAR(static_cast<double>(both_keys), n * q, 6 * sigma);
  EXPECT_NEAR(static_cast<double>(both_neighbours), n * q, 6 * sigma);
}

TEST(Dropout, RejectsBadProbability) {
  std::vector<float> x(4, 1.0f);
  EXPECT_THROW(dropout_forward(x.data(), x.data(), 4, 1.0, 0), Error);
  EXPECT_THROW(dropout_forward(x.data(), x.data(), 4, -0.1, 0), Error);
}

}  // namespace
}  // namespace ll::cpu
