// See communicator.h. The single and in-process (threads) worlds, the choice of world, the
// collective timeout and the tp/dp split; MPI lives in mpi_communicator.cpp.
#include "parallel/communicator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <utility>

#include "core/error.h"
#include "parallel/mpi_communicator.h"

namespace ll {

namespace {

std::atomic<double> g_collective_timeout{1800.0};  // HF's ddp_timeout default

// Adds the wall time of one collective to a communicator's (shared) counter.
class CollectiveClock {
 public:
  explicit CollectiveClock(double& seconds)
      : seconds_(seconds), start_(std::chrono::steady_clock::now()) {}
  ~CollectiveClock() {
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  CollectiveClock(const CollectiveClock&) = delete;
  CollectiveClock& operator=(const CollectiveClock&) = delete;

 private:
  double& seconds_;
  std::chrono::steady_clock::time_point start_;
};

[[noreturn]] void exit_process(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

// ---- single ------------------------------------------------------------------------------

class SingleCommunicator final : public Communicator {
 public:
  explicit SingleCommunicator(std::shared_ptr<double> seconds) {
    if (seconds) collective_seconds_ = std::move(seconds);
  }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single"; }

  // One rank: the op over ranks is the data itself.
  void all_reduce(float*, int64_t count, ReduceOp) override { check_count(count); }
  void all_reduce(double*, int64_t count, ReduceOp) override { check_count(count); }
  void all_reduce(int64_t*, int64_t count, ReduceOp) override { check_count(count); }
  void all_gather(const float* in, int64_t count, float* out) override {
    check_count(count);
    if (count > 0 && in != out) std::memmove(out, in, static_cast<size_t>(count) * sizeof(float));
  }
  void broadcast(void*, int64_t count, int root) override {
    check_count(count);
    check(root == 0, "parallel",
          "broadcast from rank " + std::to_string(root) + " in a world of one process");
  }
  void barrier() override {}
  std::unique_ptr<Communicator> split(int color, int) override {
    check(color >= 0, "parallel", "split: color must be >= 0, got " + std::to_string(color));
    return std::make_unique<SingleCommunicator>(collective_seconds_);
  }
  [[noreturn]] void abort(int code) override { exit_process(code); }

 private:
  static void check_count(int64_t count) {
    check(count >= 0, "parallel", "collective of " + std::to_string(count) + " elements");
  }
};

// ---- threads -----------------------------------------------------------------------------

enum class ElementType { None, F32, F64, I64, Bytes };

// What one rank asked for; the last rank to arrive checks that every rank asked the same.
struct Request {
  const char* op = "";  // "all_reduce", "all_gather", "broadcast", "barrier", "split"
  ElementType type = ElementType::None;
  ReduceOp reduce = ReduceOp::Sum;
  int64_t count = 0;
  int root = 0;
  const void* in = nullptr;  // this rank's input, read only while every rank waits
  int color = 0;             // split
  int key = 0;
};

// The state one in-process world shares between its ranks (threads). A collective is one
// generation of a barrier: each rank posts its Request; the last to arrive computes the
// result for all (under the mutex, while the others wait, so every input is still valid)
// and advances the generation; the others then copy the result out. The result can only be
// overwritten by the next collective's last arrival, which needs every rank to have left
// this one, so one barrier per collective is enough.
struct ThreadWorld {
  explicit ThreadWorld(int n) : size(n), requests(static_cast<size_t>(n)) {}

  struct SplitResult {
    std::shared_ptr<ThreadWorld> world;
    int rank = 0;
  };

  const int size;
  std::mutex mutex;
  std::condition_variable next_generation;
  int arrived = 0;
  uint64_t generation = 0;
  std::string broken;  // set when a rank timed out or ranks disagreed: every collective fails
  std::vector<Request> requests;           // [size]
  std::vector<unsigned char> result;       // the collective's output, written by the last
  std::vector<SplitResult> split_results;  // [size], split only
};

const char* type_name(ElementType type) {
  switch (type) {
    case ElementType::F32:
      return "float";
    case ElementType::F64:
      return "double";
    case ElementType::I64:
      return "int64";
    case ElementType::Bytes:
      return "bytes";
    case ElementType::None:
      break;
  }
  return "none";
}

std::string describe(const Request& request) {
  std::string text = request.op;
  if (request.type != ElementType::None) {
    text += std::string("(") + type_name(request.type) + " x" + std::to_string(request.count);
    if (std::strcmp(request.op, "all_reduce") == 0) {
      text += request.reduce == ReduceOp::Sum ? ", sum" : ", max";
    }
    if (std::strcmp(request.op, "broadcast") == 0) text += ", root " + std::to_string(request.root);
    text += ")";
  }
  return text;
}

bool same_collective(const Request& a, const Request& b) {
  return std::strcmp(a.op, b.op) == 0 && a.type == b.type && a.reduce == b.reduce &&
         a.count == b.count && a.root == b.root;
}

template <typename T>
void reduce_in_rank_order(ThreadWorld& world) {
  // Rank 0's data, then ranks 1..n-1 combined into it in order: the same bits on every rank
  // (and the same as a sequential loop over ranks), whatever order the threads arrived in.
  const auto count = static_cast<size_t>(world.requests[0].count);
  world.result.resize(count * sizeof(T));
  if (count == 0) return;
  auto* out = reinterpret_cast<T*>(world.result.data());  // [count]
  std::memcpy(out, world.requests[0].in, count * sizeof(T));
  const bool sum = world.requests[0].reduce == ReduceOp::Sum;
  for (int r = 1; r < world.size; ++r) {
    const T* in = static_cast<const T*>(world.requests[static_cast<size_t>(r)].in);  // [count]
    for (size_t i = 0; i < count; ++i) {
      if (sum) {
        out[i] += in[i];
      } else if (in[i] > out[i]) {
        out[i] = in[i];
      }
    }
  }
}

void split_world(ThreadWorld& world) {
  // Members of each colour sorted by (key, old rank), as MPI_Comm_split orders them.
  world.split_results.assign(static_cast<size_t>(world.size), {});
  std::vector<int> order(static_cast<size_t>(world.size));
  for (int r = 0; r < world.size; ++r) order[static_cast<size_t>(r)] = r;
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    const Request& x = world.requests[static_cast<size_t>(a)];
    const Request& y = world.requests[static_cast<size_t>(b)];
    if (x.color != y.color) return x.color < y.color;
    if (x.key != y.key) return x.key < y.key;
    return a < b;
  });
  for (size_t begin = 0; begin < order.size();) {
    const int color = world.requests[static_cast<size_t>(order[begin])].color;
    size_t end = begin;
    while (end < order.size() && world.requests[static_cast<size_t>(order[end])].color == color) {
      ++end;
    }
    auto group = std::make_shared<ThreadWorld>(static_cast<int>(end - begin));
    for (size_t i = begin; i < end; ++i) {
      world.split_results[static_cast<size_t>(order[i])] = {group, static_cast<int>(i - begin)};
    }
    begin = end;
  }
}

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<ThreadWorld> world, int rank, std::shared_ptr<double> seconds)
      : world_(std::move(world)), rank_(rank) {
    if (seconds) collective_seconds_ = std::move(seconds);
  }
  int rank() const override { return rank_; }
  int size() const override { return world_->size; }
  std::string name() const override { return "threads"; }

  void all_reduce(float* data, int64_t count, ReduceOp op) override {
    reduce(data, count, op, ElementType::F32, reduce_in_rank_order<float>);
  }
  void all_reduce(double* data, int64_t count, ReduceOp op) override {
    reduce(data, count, op, ElementType::F64, reduce_in_rank_order<double>);
  }
  void all_reduce(int64_t* data, int64_t count, ReduceOp op) override {
    reduce(data, count, op, ElementType::I64, reduce_in_rank_order<int64_t>);
  }

  void all_gather(const float* in, int64_t count, float* out) override {
    Request request{"all_gather", ElementType::F32, ReduceOp::Sum, count, 0, in, 0, 0};
    run(request, [](ThreadWorld& world) {
      const size_t bytes = static_cast<size_t>(world.requests[0].count) * sizeof(float);
      world.result.resize(bytes * static_cast<size_t>(world.size));  // [size * count] f32
      if (bytes == 0) return;
      for (int r = 0; r < world.size; ++r) {
        std::memcpy(world.result.data() + bytes * static_cast<size_t>(r),
                    world.requests[static_cast<size_t>(r)].in, bytes);
      }
    });
    if (!world_->result.empty()) std::memcpy(out, world_->result.data(), world_->result.size());
  }

  void broadcast(void* bytes, int64_t count, int root) override {
    check(root >= 0 && root < size(), "parallel",
          "broadcast from rank " + std::to_string(root) + " in a world of " +
              std::to_string(size()) + " ranks");
    Request request{"broadcast", ElementType::Bytes, ReduceOp::Sum, count, root, bytes, 0, 0};
    run(request, [](ThreadWorld& world) {
      const Request& from = world.requests[static_cast<size_t>(world.requests[0].root)];
      const auto* begin = static_cast<const unsigned char*>(from.in);
      world.result.assign(begin, begin + from.count);
    });
    if (rank_ != root && count > 0)
      std::memcpy(bytes, world_->result.data(), world_->result.size());
  }

  void barrier() override {
    run(Request{"barrier"}, [](ThreadWorld&) {});
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    check(color >= 0, "parallel", "split: color must be >= 0, got " + std::to_string(color));
    Request request{"split"};
    request.color = color;
    request.key = key;
    run(request, split_world);
    const ThreadWorld::SplitResult& mine = world_->split_results[static_cast<size_t>(rank_)];
    return std::make_unique<ThreadCommunicator>(mine.world, mine.rank, collective_seconds_);
  }

  [[noreturn]] void abort(int code) override { exit_process(code); }

 private:
  template <typename T>
  void reduce(T* data, int64_t count, ReduceOp op, ElementType type,
              void (*compute)(ThreadWorld&)) {
    run(Request{"all_reduce", type, op, count, 0, data, 0, 0}, compute);
    if (count > 0) std::memcpy(data, world_->result.data(), world_->result.size());
  }

  // One generation of the world's barrier (see ThreadWorld); throws ll::Error when the ranks
  // disagree on the collective, when it waited past collective_timeout() or when the world
  // broke earlier.
  void run(const Request& request, const std::function<void(ThreadWorld&)>& compute) {
    check(request.count >= 0, "parallel",
          std::string(request.op) + " of " + std::to_string(request.count) + " elements");
    CollectiveClock clock(*collective_seconds_);
    ThreadWorld& world = *world_;
    std::unique_lock lock(world.mutex);
    if (!world.broken.empty()) fail("parallel", world.broken);
    world.requests[static_cast<size_t>(rank_)] = request;
    if (++world.arrived == world.size) {
      world.arrived = 0;
      for (int r = 1; r < world.size; ++r) {
        const Request& other = world.requests[static_cast<size_t>(r)];
        if (!same_collective(world.requests[0], other)) {
          world.broken = "rank 0 called " + describe(world.requests[0]) + " but rank " +
                         std::to_string(r) + " called " + describe(other) +
                         " (every rank must call the same collectives in the same order)";
          world.next_generation.notify_all();
          fail("parallel", world.broken);
        }
      }
      compute(world);
      ++world.generation;
      world.next_generation.notify_all();
      return;
    }
    const uint64_t generation = world.generation;
    const auto done = [&] { return world.generation != generation || !world.broken.empty(); };
    const double timeout = collective_timeout();
    if (timeout > 0 && timeout < 1e7) {  // beyond ~4 months: for ever (and no clock overflow)
      if (!world.next_generation.wait_for(lock, std::chrono::duration<double>(timeout), done)) {
        char seconds[32];
        std::snprintf(seconds, sizeof(seconds), "%g", timeout);
        world.broken = "rank " + std::to_string(rank_) + ": " + request.op + " waited " + seconds +
                       " s for the other ranks (a rank died or hung)";
        world.next_generation.notify_all();
        fail("parallel", world.broken);
      }
    } else {
      world.next_generation.wait(lock, done);
    }
    if (world.generation == generation) fail("parallel", world.broken);
  }

  std::shared_ptr<ThreadWorld> world_;
  int rank_;
};

const char* const kLaunchVariables[] = {
    "OMPI_COMM_WORLD_SIZE",  // Open MPI 4 and 5 mpirun (and the Kubeflow MPI Operator's)
    "PMI_SIZE",              // MPICH / Intel MPI hydra, Slurm srun --mpi=pmi2
    "PMIX_RANK",             // PMIx launchers: Open MPI 5 prterun, Slurm srun --mpi=pmix
    "MPI_LOCALRANKID",       // MPICH / Intel MPI hydra
};

}  // namespace

double Communicator::seconds_in_collectives() const {
  return *collective_seconds_;
}

namespace detail {

std::string mpi_launch_variable() {
  for (const char* name : kLaunchVariables) {
    const char* value = std::getenv(name);
    if (value != nullptr && value[0] != '\0') return std::string(name) + "=" + value;
  }
  return "";
}

// The first of `names` set to a positive integer, or -1.
int launch_count(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    const char* value = std::getenv(name);
    if (value == nullptr) continue;
    char* end = nullptr;
    const long size = std::strtol(value, &end, 10);
    if (end != value && *end == '\0' && size > 0 && size < (1L << 30)) {
      return static_cast<int>(size);
    }
  }
  return -1;
}

int mpi_launch_size() {
  return launch_count({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"});
}

}  // namespace detail

int processes_on_this_machine() {
  // Open MPI; MPICH / Intel MPI hydra.
  const int count = detail::launch_count({"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"});
  return count > 0 ? count : 1;
}

bool launched_by_mpi() {
  return !detail::mpi_launch_variable().empty();
}

std::unique_ptr<Communicator> world_communicator() {
  if (launched_by_mpi()) return detail::make_mpi_world();
  return single_communicator();
}

std::unique_ptr<Communicator> single_communicator() {
  return std::make_unique<SingleCommunicator>(nullptr);
}

std::vector<std::unique_ptr<Communicator>> thread_communicators(int size) {
  check(size >= 1, "parallel", "a world of " + std::to_string(size) + " threads");
  auto world = std::make_shared<ThreadWorld>(size);
  std::vector<std::unique_ptr<Communicator>> ranks;
  for (int r = 0; r < size; ++r) {
    ranks.push_back(std::make_unique<ThreadCommunicator>(world, r, nullptr));
  }
  return ranks;
}

void set_collective_timeout(double seconds) {
  g_collective_timeout.store(seconds);
}

double collective_timeout() {
  return g_collective_timeout.load();
}

ParallelGroups make_parallel_groups(Communicator& world, int tensor_parallel_size) {
  const int tp = tensor_parallel_size;
  check(tp >= 1, "parallel",
        "--tensor_parallel_size must be at least 1, got " + std::to_string(tp));
  check(world.size() % tp == 0, "parallel",
        "--tensor_parallel_size " + std::to_string(tp) +
            " does not divide the number of processes " + std::to_string(world.size()) +
            " (launch tensor_parallel_size x data-parallel processes, e.g. mpirun -np " +
            std::to_string(tp) + ")");
  // world rank = dp_rank * tp + tp_rank: a tp group is tp consecutive ranks.
  const int tp_rank = world.rank() % tp;
  const int dp_rank = world.rank() / tp;
  ParallelGroups groups;
  groups.world = &world;
  groups.tp = world.split(/*color=*/dp_rank, /*key=*/tp_rank);
  groups.dp = world.split(/*color=*/tp_rank, /*key=*/dp_rank);
  return groups;
}

}  // namespace ll
