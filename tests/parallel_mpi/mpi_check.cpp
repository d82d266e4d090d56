// The MPI communicator checked over real processes; ctest runs it as
//   mpirun --oversubscribe -n 3 mpi_check              (parallel_mpi.collectives)
//   mpirun --oversubscribe -n 3 mpi_check --hang-test  (parallel_mpi.timeout_aborts, through
//                                                       expect_timeout_abort.cmake)
// Every rank runs every check (so no rank leaves the others waiting in a collective), prints
// what differed, and the failure counts are summed at the end: every rank exits 1 when any
// rank failed a check.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "parallel/communicator.h"

namespace {

int g_rank = -1;
int g_checks = 0;
int g_failures = 0;

void expect(bool ok, const std::string& what) {
  ++g_checks;
  if (ok) return;
  ++g_failures;
  std::fprintf(stderr, "mpi_check rank %d: FAIL %s\n", g_rank, what.c_str());
}

template <typename T>
std::string text(T value) {
  if constexpr (std::is_same_v<T, std::string>) {
    return "'" + value + "'";
  } else if constexpr (std::is_floating_point_v<T>) {
    char buffer[64];
    std::snprintf(buffer, sizeof(buffer), "%.9g", static_cast<double>(value));
    return buffer;
  } else {
    return std::to_string(value);
  }
}

template <typename T>
void expect_equal(T got, T expected, const std::string& what) {
  expect(got == expected, what + ": got " + text(got) + ", expected " + text(expected));
}

// A deterministic float in [-1, 1) for (rank, index): inputs whose sum depends on the order
// of addition, so a reduction that differed between ranks would show in the bits.
float input_value(int rank, int64_t index) {
  uint64_t x =
      static_cast<uint64_t>(index) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(rank + 1);
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  const auto mantissa = static_cast<uint32_t>(x >> 40);  // 24 bits
  return static_cast<float>(mantissa) / 8388608.0f - 1.0f;
}

void check_world(ll::Communicator& world) {
  expect_equal(world.name(), std::string("mpi"), "world_communicator().name()");
  expect_equal(world.size(), 3, "world size");
  expect(ll::built_with_mpi(), "built_with_mpi()");
  expect(ll::launched_by_mpi(), "launched_by_mpi()");
  expect_equal(ll::collective_timeout(), 1800.0, "default collective_timeout()");
}

void check_all_reduce(ll::Communicator& world) {
  const int rank = world.rank();
  const int n = world.size();

  // Exact sums: multiples of 1/4 in a small range add without rounding.
  std::vector<float> f(10);
  for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>((rank + 1) * (i + 1)) * 0.25f;
  world.all_reduce(f.data(), static_cast<int64_t>(f.size()), ll::ReduceOp::Sum);
  for (size_t i = 0; i < f.size(); ++i) {
    expect_equal(f[i], static_cast<float>(6 * (i + 1)) * 0.25f, "float sum[" + text(i) + "]");
  }
  for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>(rank == 1 ? 100 - i : i);
  world.all_reduce(f.data(), static_cast<int64_t>(f.size()), ll::ReduceOp::Max);
  for (size_t i = 0; i < f.size(); ++i) {
    expect_equal(f[i], static_cast<float>(100 - i), "float max[" + text(i) + "]");
  }

  double d[3] = {0.5 * rank, -1.0 * rank, 1e300 * (rank == 2 ? 1 : 0)};
  world.all_reduce(d, 3, ll::ReduceOp::Sum);
  expect_equal(d[0], 1.5, "double sum[0]");
  expect_equal(d[1], -3.0, "double sum[1]");
  expect_equal(d[2], 1e300, "double sum[2]");
  double dmax[2] = {-1.0 * rank, 2.5 * rank};
  world.all_reduce(dmax, 2, ll::ReduceOp::Max);
  expect_equal(dmax[0], 0.0, "double max[0]");
  expect_equal(dmax[1], 5.0, "double max[1]");

  // Beyond 32 bits: an int reduction would wrap.
  int64_t ints[2] = {(int64_t{1} << 40) + rank, -(int64_t{1} << 35) * (rank + 1)};
  world.all_reduce(ints, 2, ll::ReduceOp::Sum);
  expect_equal(ints[0], 3 * (int64_t{1} << 40) + 3, "int64 sum[0]");
  expect_equal(ints[1], -6 * (int64_t{1} << 35), "int64 sum[1]");
  int64_t imax[2] = {(int64_t{1} << 50) * rank, -rank};
  world.all_reduce(imax, 2, ll::ReduceOp::Max);
  expect_equal(imax[0], 2 * (int64_t{1} << 50), "int64 max[0]");
  expect_equal(imax[1], int64_t{0}, "int64 max[1]");

  // Large, order-sensitive sums (1M floats: Open MPI's large-message algorithms). Against
  // the rank-order sum within 4 float ulps of the summed magnitudes (3 terms: at most 2
  // roundings either way), and bit-identical across ranks.
  const int64_t count = (int64_t{1} << 20) + 3;
  std::vector<float> big(static_cast<size_t>(count));  // [count] f32
  for (int64_t i = 0; i < count; ++i) big[static_cast<size_t>(i)] = input_value(rank, i);
  world.all_reduce(big.data(), count, ll::ReduceOp::Sum);
  int64_t off = 0;
  for (int64_t i = 0; i < count; ++i) {
    float reference = 0.0f;
    float magnitude = 0.0f;
    for (int r = 0; r < n; ++r) {
      reference += input_value(r, i);
      magnitude += std::fabs(input_value(r, i));
    }
    if (std::fabs(big[static_cast<size_t>(i)] - reference) > 4 * 1.2e-7f * magnitude) ++off;
  }
  expect_equal(off, int64_t{0}, "large float sum: elements off the rank-order sum");
  std::vector<float> root_bits = big;
  world.broadcast(root_bits.data(), count * static_cast<int64_t>(sizeof(float)), 0);
  expect(std::memcmp(root_bits.data(), big.data(), big.size() * sizeof(float)) == 0,
         "large float sum: bits differ from rank 0's");
}

void check_gather_broadcast_barrier(ll::Communicator& world) {
  const int rank = world.rank();
  float in[4];
  for (int j = 0; j < 4; ++j) in[j] = static_cast<float>(rank * 100 + j);
  std::vector<float> out(static_cast<size_t>(4 * world.size()), -1.0f);
  world.all_gather(in, 4, out.data());
  for (int r = 0; r < world.size(); ++r) {
    for (int j = 0; j < 4; ++j) {
      expect_equal(out[static_cast<size_t>(r * 4 + j)], static_cast<float>(r * 100 + j),
                   "all_gather out[" + text(r * 4 + j) + "]");
    }
  }

  char message[32] = {};
  std::snprintf(message, sizeof(message), "junk %d", rank);
  if (rank == 2) std::snprintf(message, sizeof(message), "hello from rank 2");
  world.broadcast(message, sizeof(message), 2);
  expect_equal(std::string(message), std::string("hello from rank 2"), "broadcast from root 2");

  world.barrier();
}

void check_split(ll::Communicator& world) {
  const int rank = world.rank();
  // Colour by parity, reversed keys: {0, 2} ordered 2, 0; {1} alone.
  std::unique_ptr<ll::Communicator> parity = world.split(rank % 2, -rank);
  expect_equal(parity->name(), std::string("mpi"), "split name");
  expect_equal(parity->size(), rank % 2 == 0 ? 2 : 1, "split size");
  expect_equal(parity->rank(), rank == 0 ? 1 : 0, "split rank");
  int64_t value = rank;
  parity->all_reduce(&value, 1, ll::ReduceOp::Sum);
  expect_equal(value, int64_t{rank % 2 == 0 ? 2 : 1}, "all_reduce over the split group");

  ll::ParallelGroups one = ll::make_parallel_groups(world, 1);
  expect_equal(one.tp_size(), 1, "tp=1: tp size");
  expect_equal(one.tp_rank(), 0, "tp=1: tp rank");
  expect_equal(one.dp_size(), 3, "tp=1: dp size");
  expect_equal(one.dp_rank(), rank, "tp=1: dp rank");
  ll::ParallelGroups three = ll::make_parallel_groups(world, 3);
  expect_equal(three.tp_size(), 3, "tp=3: tp size");
  expect_equal(three.tp_rank(), rank, "tp=3: tp rank");
  expect_equal(three.dp_size(), 1, "tp=3: dp size");
  double x = 1.0 + rank;
  three.tp->all_reduce(&x, 1, ll::ReduceOp::Sum);
  expect_equal(x, 6.0, "tp=3: all_reduce over tp");

  std::string error;
  try {
    ll::make_parallel_groups(world, 2);
  } catch (const ll::Error& e) {
    error = e.what();
  }
  expect(error.find("--tensor_parallel_size 2 does not divide the number of processes 3") !=
             std::string::npos,
         "tp=2 over 3 processes: error '" + error + "'");

  // A split child's collectives count in the parent's seconds; rank 0 arrives late.
  const double before = world.seconds_in_collectives();
  if (rank == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  parity->barrier();
  one.dp->barrier();
  const double waited = world.seconds_in_collectives() - before;
  expect(rank == 0 || waited >= 0.1,
         "seconds_in_collectives grew by " + text(waited) + " s waiting 0.2 s for rank 0");
}

int run_hang_test(ll::Communicator& world) {
  ll::set_collective_timeout(3.0);
  world.barrier();  // every rank is up
  if (world.rank() == 1) {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));  // hung: never joins
  }
  float value = 1.0f;
  world.all_reduce(&value, 1, ll::ReduceOp::Sum);
  std::fprintf(stderr, "mpi_check rank %d: all_reduce returned without rank 1\n", world.rank());
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<ll::Communicator> world;
  try {
    world = ll::world_communicator();
    g_rank = world->rank();
    if (argc > 1 && std::string(argv[1]) == "--hang-test") return run_hang_test(*world);

    check_world(*world);
    check_all_reduce(*world);
    check_gather_broadcast_barrier(*world);
    check_split(*world);
    {
      // A second world while the first lives shares its MPI session.
      std::unique_ptr<ll::Communicator> again = ll::world_communicator();
      expect(again->name() == "mpi" && again->size() == 3 && again->rank() == g_rank,
             "a second world_communicator()");
    }
    expect(world->seconds_in_collectives() > 0, "seconds_in_collectives() > 0");

    int64_t failures = g_failures;
    world->all_reduce(&failures, 1, ll::ReduceOp::Sum);
    std::printf("mpi_check rank %d: %d checks, %d failed\n", g_rank, g_checks, g_failures);
    std::fflush(stdout);
    world->barrier();
    if (g_rank == 0) {
      if (failures == 0) {
        std::printf("mpi_check: all 3 ranks passed\n");
      } else {
        std::printf("mpi_check: %lld checks failed over the ranks\n",
                    static_cast<long long>(failures));
      }
    }
    return failures == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpi_check rank %d: error: %s\n", g_rank, e.what());
    if (world) world->abort(1);  // the others may be waiting in a collective
    return 1;
  }
}
