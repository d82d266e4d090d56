// Tests of parallel/: the single and in-process (threads) communicators, the tp/dp split, the
// collective timeout and the choice of world. The MPI communicator runs the same kind of
// checks over real processes in tests/parallel_mpi/mpi_check.cpp (ctest parallel_mpi.*).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "parallel/communicator.h"
#include "test_util.h"

namespace ll {
namespace {

using Ranks = std::vector<std::unique_ptr<Communicator>>;

// Runs body(rank's communicator) on one thread per rank and returns each rank's ll::Error
// message ("" when it returned normally).
std::vector<std::string> run_ranks(Ranks& ranks, const std::function<void(Communicator&)>& body) {
  std::vector<std::string> errors(ranks.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < ranks.size(); ++r) {
    threads.emplace_back([&, r] {
      try {
        body(*ranks[r]);
      } catch (const Error& error) {
        errors[r] = error.what();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  return errors;
}

void expect_no_errors(const std::vector<std::string>& errors) {
  for (size_t r = 0; r < errors.size(); ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

// A bug that leaves a rank waiting fails the test in seconds, not after the 1800 s default.
class Parallel : public ::testing::Test {
 protected:
  void SetUp() override { set_collective_timeout(30.0); }
  void TearDown() override { set_collective_timeout(1800.0); }
};

// Sets an environment variable for the scope of a test, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

const char* const kLaunchVariables[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                        "MPI_LOCALRANKID"};

TEST_F(Parallel, SingleIsAWorldOfOne) {
  auto single = single_communicator();
  EXPECT_EQ(single->name(), "single");
  EXPECT_EQ(single->rank(), 0);
  EXPECT_EQ(single->size(), 1);
  float f[2] = {1.5f, -2.0f};
  single->all_reduce(f, 2, ReduceOp::Sum);
  EXPECT_EQ(f[0], 1.5f);
  EXPECT_EQ(f[1], -2.0f);
  double d = 3.25;
  single->all_reduce(&d, 1, ReduceOp::Max);
  EXPECT_EQ(d, 3.25);
  int64_t i = int64_t{1} << 40;
  single->all_reduce(&i, 1, ReduceOp::Sum);
  EXPECT_EQ(i, int64_t{1} << 40);
  float gathered[2] = {};
  single->all_gather(f, 2, gathered);
  EXPECT_EQ(gathered[0], 1.5f);
  EXPECT_EQ(gathered[1], -2.0f);
  char bytes[4] = {'a', 'b', 'c', 0};
  single->broadcast(bytes, 4, 0);
  EXPECT_STREQ(bytes, "abc");
  EXPECT_NE(test::error_of([&] { single->broadcast(bytes, 4, 1); }).find("broadcast from rank 1"),
            std::string::npos);
  single->barrier();
  auto child = single->split(0, 0);
  EXPECT_EQ(child->name(), "single");
  EXPECT_EQ(child->size(), 1);
  EXPECT_GE(single->seconds_in_collectives(), 0.0);
}

TEST_F(Parallel, ThreadsAllReduceSumAndMax) {
  Ranks ranks = thread_communicators(4);
  expect_no_errors(run_ranks(ranks, [](Communicator& comm) {
    const int r = comm.rank();
    EXPECT_EQ(comm.name(), "threads");
    EXPECT_EQ(comm.size(), 4);
    // Multiples of 1/4 in a small range: the sums are exact.
    float f[3] = {0.25f * static_cast<float>(r), -1.0f, static_cast<float>(r * r)};
    comm.all_reduce(f, 3, ReduceOp::Sum);
    EXPECT_EQ(f[0], 1.5f);  // 0.25 * (0+1+2+3)
    EXPECT_EQ(f[1], -4.0f);
    EXPECT_EQ(f[2], 14.0f);  // 0+1+4+9
    float fmax[2] = {static_cast<float>(r), -static_cast<float>(r)};
    comm.all_reduce(fmax, 2, ReduceOp::Max);
    EXPECT_EQ(fmax[0], 3.0f);
    EXPECT_EQ(fmax[1], 0.0f);

    double d[2] = {0.5 * r, 1e300 * (r == 3 ? 1 : 0)};
    comm.all_reduce(d, 2, ReduceOp::Sum);
    EXPECT_EQ(d[0], 3.0);
    EXPECT_EQ(d[1], 1e300);
    double dmax = r == 1 ? 7.5 : -1.0;
    comm.all_reduce(&dmax, 1, ReduceOp::Max);
    EXPECT_EQ(dmax, 7.5);

    // Beyond 32 bits: an int reduction would wrap.
    int64_t i[2] = {(int64_t{1} << 40) + r, -(int64_t{1} << 36) * r};
    comm.all_reduce(i, 2, ReduceOp::Sum);
    EXPECT_EQ(i[0], 4 * (int64_t{1} << 40) + 6);
    EXPECT_EQ(i[1], -6 * (int64_t{1} << 36));
    int64_t imax = (int64_t{1} << 50) * (3 - r);
    comm.all_reduce(&imax, 1, ReduceOp::Max);
    EXPECT_EQ(imax, 3 * (int64_t{1} << 50));

    comm.all_reduce(f, 0, ReduceOp::Sum);  // an empty collective is still one
  }));
}

TEST_F(Parallel, ThreadsAllReduceSumsInRankOrderBitIdentically) {
  // Float addition is not associative: (1e8 + 1) - 1e8 is 0 in float (1 is below half an
  // ulp of 1e8), so the rank order 0..3 gives 0 + 1 = 1 where another order gives 2 or 0.
  // Expect exactly the sequential rank-order sum, with the same bits on every rank.
  const float inputs[4] = {1e8f, 1.0f, -1e8f, 1.0f};
  Ranks ranks = thread_communicators(4);
  constexpr int kCount = 4097;
  auto value = [](int rank, int i) {  // order-sensitive magnitudes from 1e-3 to 1e5
    return static_cast<float>((rank * 7919 + i * 104729) % 1000 + 1) * (i % 2 == 0 ? 1e-3f : 1e2f) *
           ((rank + i) % 3 == 0 ? -1.0f : 1.0f);
  };
  std::vector<float> reference(kCount);  // [kCount] f32, rank order
  for (int i = 0; i < kCount; ++i) {
    float sum = value(0, i);
    for (int r = 1; r < 4; ++r) sum += value(r, i);
    reference[static_cast<size_t>(i)] = sum;
  }
  std::vector<std::vector<float>> results(4);
  expect_no_errors(run_ranks(ranks, [&](Communicator& comm) {
    float x = inputs[comm.rank()];
    comm.all_reduce(&x, 1, ReduceOp::Sum);
    EXPECT_EQ(x, 1.0f) << "rank " << comm.rank();
    std::vector<float> data(kCount);
    for (int i = 0; i < kCount; ++i) data[static_cast<size_t>(i)] = value(comm.rank(), i);
    comm.all_reduce(data.data(), kCount, ReduceOp::Sum);
    results[static_cast<size_t>(comm.rank())] = std::move(data);
  }));
  for (const std::vector<float>& result : results) {
    ASSERT_EQ(result.size(), reference.size());
    EXPECT_EQ(std::memcmp(result.data(), reference.data(), reference.size() * sizeof(float)), 0);
  }
}

TEST_F(Parallel, ThreadsAllGatherInRankOrder) {
  Ranks ranks = thread_communicators(3);
  expect_no_errors(run_ranks(ranks, [](Communicator& comm) {
    const float in[2] = {static_cast<float>(10 * comm.rank()),
                         static_cast<float>(10 * comm.rank() + 1)};
    float out[6] = {};
    comm.all_gather(in, 2, out);
    const float expected[6] = {0, 1, 10, 11, 20, 21};
    for (int i = 0; i < 6; ++i) EXPECT_EQ(out[i], expected[i]) << "rank " << comm.rank();
  }));
}

TEST_F(Parallel, ThreadsBroadcastFromNonZeroRoot) {
  Ranks ranks = thread_communicators(4);
  expect_no_errors(run_ranks(ranks, [](Communicator& comm) {
    char text[24] = {};
    std::snprintf(text, sizeof(text), "junk %d", comm.rank());
    if (comm.rank() == 2) std::snprintf(text, sizeof(text), "from rank two");
    comm.broadcast(text, sizeof(text), 2);
    EXPECT_STREQ(text, "from rank two");
    int64_t step = comm.rank() == 3 ? 1234 : 0;
    comm.broadcast(&step, sizeof(step), 3);
    EXPECT_EQ(step, 1234);
  }));
}

TEST_F(Parallel, ThreadsBarrierWaitsForEveryRank) {
  Ranks ranks = thread_communicators(4);
  std::atomic<int> arrived{0};
  expect_no_errors(run_ranks(ranks, [&](Communicator& comm) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5 * comm.rank()));
    arrived.fetch_add(1);
    comm.barrier();
    EXPECT_EQ(arrived.load(), 4) << "rank " << comm.rank() << " left the barrier early";
  }));
}

TEST_F(Parallel, ThreadsSplitOrdersByKeyThenRank) {
  Ranks ranks = thread_communicators(4);
  expect_no_errors(run_ranks(ranks, [](Communicator& comm) {
    const int r = comm.rank();
    // Colour by parity, reversed keys: {0, 2} becomes (2, 0) and {1, 3} becomes (3, 1).
    auto group = comm.split(r % 2, -r);
    EXPECT_EQ(group->size(), 2);
    EXPECT_EQ(group->rank(), r < 2 ? 1 : 0) << "world rank " << r;
    float gathered[2] = {};
    const float mine = static_cast<float>(r);
    group->all_gather(&mine, 1, gathered);
    EXPECT_EQ(gathered[0], static_cast<float>(r % 2 + 2));
    EXPECT_EQ(gathered[1], static_cast<float>(r % 2));
    // Equal keys: ordered by rank.
    auto all = comm.split(0, 0);
    EXPECT_EQ(all->rank(), r);
    EXPECT_EQ(all->size(), 4);
  }));
}

TEST_F(Parallel, ParallelGroupsWorld4Tp2) {
  Ranks ranks = thread_communicators(4);
  expect_no_errors(run_ranks(ranks, [](Communicator& comm) {
    const int r = comm.rank();
    ParallelGroups groups = make_parallel_groups(comm, 2);
    EXPECT_EQ(groups.world, &comm);
    // world rank = dp_rank * 2 + tp_rank: tp groups {0,1} {2,3}, dp groups {0,2} {1,3}.
    EXPECT_EQ(groups.tp_size(), 2);
    EXPECT_EQ(groups.dp_size(), 2);
    EXPECT_EQ(groups.tp_rank(), r % 2) << "world rank " << r;
    EXPECT_EQ(groups.dp_rank(), r / 2) << "world rank " << r;
    int64_t tp_sum = r;
    groups.tp->all_reduce(&tp_sum, 1, ReduceOp::Sum);
    EXPECT_EQ(tp_sum, r < 2 ? 0 + 1 : 2 + 3) << "world rank " << r;
    float dp_sum = static_cast<float>(r);
    groups.dp->all_reduce(&dp_sum, 1, ReduceOp::Sum);
    EXPECT_EQ(dp_sum, r % 2 == 0 ? 0.0f + 2.0f : 1.0f + 3.0f) << "world rank " << r;
    // The groups are independent: a tp collective while the other tp group does the same.
    groups.tp->barrier();
    groups.dp->barrier();
    comm.barrier();
  }));
}

TEST_F(Parallel, ParallelGroupsTp1AndTpWorld) {
  Ranks ranks = thread_communicators(4);
  expect_no_errors(run_ranks(ranks, [](Communicator& comm) {
    ParallelGroups data_only = make_parallel_groups(comm, 1);
    EXPECT_EQ(data_only.tp_size(), 1);
    EXPECT_EQ(data_only.dp_size(), 4);
    EXPECT_EQ(data_only.dp_rank(), comm.rank());
    ParallelGroups tensor_only = make_parallel_groups(comm, 4);
    EXPECT_EQ(tensor_only.tp_size(), 4);
    EXPECT_EQ(tensor_only.tp_rank(), comm.rank());
    EXPECT_EQ(tensor_only.dp_size(), 1);
  }));
}

TEST_F(Parallel, BadTensorParallelSizeNamesTheFlag) {
  // The size is checked before any collective, so one rank alone sees the error.
  Ranks ranks = thread_communicators(4);
  const std::string zero = test::error_of([&] { make_parallel_groups(*ranks[0], 0); });
  EXPECT_NE(zero.find("--tensor_parallel_size"), std::string::npos) << zero;
  const std::string three = test::error_of([&] { make_parallel_groups(*ranks[0], 3); });
  EXPECT_NE(three.find("--tensor_parallel_size 3 does not divide the number of processes 4"),
            std::string::npos)
      << three;
  auto single = single_communicator();
  const std::string two = test::error_of([&] { make_parallel_groups(*single, 2); });
  EXPECT_NE(two.find("--tensor_parallel_size 2 does not divide the number of processes 1"),
            std::string::npos)
      << two;
}

TEST_F(Parallel, SecondsInCollectivesGrowAndIncludeSplitChildren) {
  Ranks ranks = thread_communicators(2);
  std::vector<double> waited(2), waited_in_child(2);
  expect_no_errors(run_ranks(ranks, [&](Communicator& comm) {
    const size_t r = static_cast<size_t>(comm.rank());
    auto child = comm.split(0, 0);
    // After a barrier both ranks start together; rank 0 then arrives 300 ms late, so rank 1
    // waits about 300 ms (>= 100 ms leaves room for a loaded machine waking it late).
    comm.barrier();
    const double start = comm.seconds_in_collectives();
    if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    comm.barrier();
    waited[r] = comm.seconds_in_collectives() - start;
    // The same through the split child: its time counts in the parent's seconds.
    const double before_child = comm.seconds_in_collectives();
    if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    child->barrier();
    waited_in_child[r] = comm.seconds_in_collectives() - before_child;
    EXPECT_EQ(child->seconds_in_collectives(), comm.seconds_in_collectives());
  }));
  EXPECT_GE(waited[1], 0.1);
  EXPECT_GE(waited_in_child[1], 0.1);
  EXPECT_GE(waited[0], 0.0);
}

TEST_F(Parallel, TimeoutNamesTheCollectiveAndBreaksTheWorld) {
  set_collective_timeout(0.2);
  Ranks ranks = thread_communicators(2);
  const auto start = std::chrono::steady_clock::now();
  const std::string error = test::error_of([&] {
    float x = 1.0f;
    ranks[0]->all_reduce(&x, 1, ReduceOp::Sum);  // rank 1 never comes
  });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(error,
            "[parallel] rank 0: all_reduce waited 0.2 s for the other ranks (a rank died or hung)");
  EXPECT_GE(seconds, 0.2);
  EXPECT_LT(seconds, 5.0);
  // Every later collective of that world fails at once with the same reason.
  const std::string later = test::error_of([&] { ranks[1]->barrier(); });
  EXPECT_NE(later.find("all_reduce waited 0.2 s"), std::string::npos) << later;
}

TEST_F(Parallel, MismatchedCollectivesFailOnEveryRank) {
  Ranks ranks = thread_communicators(2);
  const std::vector<std::string> errors = run_ranks(ranks, [](Communicator& comm) {
    float x = 1.0f;
    if (comm.rank() == 0) {
      comm.all_reduce(&x, 1, ReduceOp::Sum);
    } else {
      comm.broadcast(&x, sizeof(x), 0);
    }
  });
  for (const std::string& error : errors) {
    EXPECT_NE(error.find("rank 0 called all_reduce(float x1, sum) but rank 1 called "
                         "broadcast(bytes x4, root 0)"),
              std::string::npos)
        << error;
  }
}

TEST(ParallelTimeout, DefaultsTo1800AndCanBeSet) {
  EXPECT_EQ(collective_timeout(), 1800.0);
  set_collective_timeout(60.0);
  EXPECT_EQ(collective_timeout(), 60.0);
  set_collective_timeout(1800.0);
}

TEST(ParallelWorld, LaunchedByMpiReadsTheLaunchersVariables) {
  std::vector<std::unique_ptr<ScopedEnv>> cleared;
  for (const char* name : kLaunchVariables)
    cleared.push_back(std::make_unique<ScopedEnv>(name, nullptr));
  EXPECT_FALSE(launched_by_mpi());
  for (const char* name : kLaunchVariables) {
    ScopedEnv set(name, "2");
    EXPECT_TRUE(launched_by_mpi()) << name;
  }
  {
    ScopedEnv empty("OMPI_COMM_WORLD_SIZE", "");
    EXPECT_FALSE(launched_by_mpi()) << "an empty variable is not a launcher";
  }
  auto world = world_communicator();
  EXPECT_EQ(world->name(), "single");
  EXPECT_EQ(world->size(), 1);
}

TEST(ParallelWorld, MpirunWithoutMpiBuildSaysHowToGetOne) {
  if (built_with_mpi()) {
    GTEST_SKIP() << "this build has MPI (the no-MPI build runs this; mpi_check covers MPI)";
  }
  std::vector<std::unique_ptr<ScopedEnv>> cleared;
  for (const char* name : kLaunchVariables)
    cleared.push_back(std::make_unique<ScopedEnv>(name, nullptr));
  ScopedEnv launched("OMPI_COMM_WORLD_SIZE", "2");
  const std::string error = test::error_of([] { world_communicator(); });
  EXPECT_NE(error.find("[parallel]"), std::string::npos) << error;
  EXPECT_NE(error.find("OMPI_COMM_WORLD_SIZE=2"), std::string::npos) << error;
  EXPECT_NE(error.find("built without MPI"), std::string::npos) << error;
  EXPECT_NE(error.find("libopenmpi-dev"), std::string::npos) << error;
}

}  // namespace
}  // namespace ll
