// See communicator.h and mpi_communicator.h: the world of the processes mpirun started, over
// Open MPI (Debian's libopenmpi-dev), and the stub of a build without MPI. This is the only
// file that includes mpi.h; LL_HAVE_MPI is a private definition of the parallel/ library.
//
// One MpiSession per process initialises MPI, runs the collective watchdog and finalises MPI
// when the last communicator holding it (the world or a split child) is destroyed.
#include "parallel/mpi_communicator.h"

#include "core/error.h"

#if LL_HAVE_MPI

#define OMPI_SKIP_MPICXX 1  // the C API only (no deprecated C++ bindings)
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

namespace ll {

bool built_with_mpi() {
  return true;
}

namespace detail {

namespace {

// MPI errors return (MPI_ERRORS_RETURN on our communicators) and become ll::Error with the
// call, file:line and MPI's text.
#define LL_MPI_CHECK(call) check_mpi((call), #call, __FILE__, __LINE__)

void check_mpi(int code, const char* call, const char* file, int line) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) {
    std::snprintf(text, sizeof(text), "MPI error %d", code);
  }
  std::string where = file;
  where = where.substr(where.find_last_of('/') + 1);
  fail("parallel", where + ":" + std::to_string(line) + ": " + call + " failed: " + text);
}

int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// MPI for this process: MPI_Init_thread at construction, MPI_Finalize at destruction, and the
// watchdog that ends the run when a collective waits past collective_timeout().
class MpiSession {
 public:
  MpiSession() {
    // FUNNELED: collectives come from the thread that initialised MPI. The watchdog thread
    // only ever calls MPI_Abort, which Open MPI honours from any thread.
    int provided = 0;
    LL_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    LL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_));
    if (provided < MPI_THREAD_FUNNELED) {
      MPI_Finalize();
      fail("parallel",
           "MPI provides thread level " + std::to_string(provided) + ", below MPI_THREAD_FUNNELED");
    }
    watchdog_ = std::thread([this] { watch(); });
  }

  ~MpiSession() {
    // A rank that died before the end leaves the others in MPI_Finalize: watched too.
    begin("finalize");
    MPI_Finalize();
    end();
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    watchdog_.join();
  }

  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int world_rank() const { return world_rank_; }

  // Marks the start and end of a collective: two atomic stores, so the watchdog costs the
  // collectives nothing measurable. One collective at a time per process (FUNNELED).
  void begin(const char* op) {
    op_.store(op, std::memory_order_relaxed);
    started_ns_.store(steady_now_ns(), std::memory_order_release);
  }
  void end() { started_ns_.store(0, std::memory_order_release); }

 private:
  void watch() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      const double timeout = collective_timeout();
      // Poll once a second, more often for short timeouts so they end close to on time.
      const double poll = timeout > 0 ? std::clamp(timeout / 4, 0.05, 1.0) : 1.0;
      wake_.wait_for(lock, std::chrono::duration<double>(poll));
      if (stopping_ || timeout <= 0) continue;
      const int64_t started = started_ns_.load(std::memory_order_acquire);
      if (started == 0) continue;
      const double waited = static_cast<double>(steady_now_ns() - started) * 1e-9;
      if (waited <= timeout) continue;
      const char* op = op_.load(std::memory_order_relaxed);
      std::fprintf(stderr,
                   "[parallel] rank %d: %s waited %g s for the other ranks (a rank died or "
                   "hung); aborting the run\n",
                   world_rank_, op, timeout);
      std::fflush(stderr);
      // Inside MPI_Finalize MPI may be half torn down: leave without it; mpirun sees a
      // process end without finalising and ends the others.
      if (std::strcmp(op, "finalize") == 0) std::_Exit(1);
      MPI_Abort(MPI_COMM_WORLD, 1);
      std::_Exit(1);
    }
  }

  int world_rank_ = 0;
  std::atomic<const char*> op_{""};
  std::atomic<int64_t> started_ns_{0};  // steady clock; 0 = no collective running
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread watchdog_;
};

// Times one collective into the communicator's counter and shows it to the watchdog.
class CollectiveScope {
 public:
  CollectiveScope(MpiSession& session, double& seconds, const char* op)
      : session_(session), seconds_(seconds), start_(std::chrono::steady_clock::now()) {
    session_.begin(op);
  }
  ~CollectiveScope() {
    session_.end();
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  CollectiveScope(const CollectiveScope&) = delete;
  CollectiveScope& operator=(const CollectiveScope&) = delete;

 private:
  MpiSession& session_;
  double& seconds_;
  std::chrono::steady_clock::time_point start_;
};

MPI_Op mpi_op(ReduceOp op) {
  return op == ReduceOp::Sum ? MPI_SUM : MPI_MAX;
}

// MPI counts are int: larger buffers go in chunks of this many elements.
constexpr int64_t kMaxChunk = int64_t{1} << 30;

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (freed at destruction, before the session can finalise).
  MpiCommunicator(std::shared_ptr<MpiSession> session, MPI_Comm comm,
                  std::shared_ptr<double> seconds)
      : session_(std::move(session)), comm_(comm) {
    if (seconds) collective_seconds_ = std::move(seconds);
    LL_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    LL_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    LL_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  }
  ~MpiCommunicator() override { MPI_Comm_free(&comm_); }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }

  void all_reduce(float* data, int64_t count, ReduceOp op) override {
    reduce(data, count, MPI_FLOAT, op);
  }
  void all_reduce(double* data, int64_t count, ReduceOp op) override {
    reduce(data, count, MPI_DOUBLE, op);
  }
  void all_reduce(int64_t* data, int64_t count, ReduceOp op) override {
    reduce(data, count, MPI_INT64_T, op);
  }

  void all_gather(const float* in, int64_t count, float* out) override {
    check(count >= 0 && count <= INT_MAX, "parallel",
          "all_gather of " + std::to_string(count) + " elements (at most 2^31 - 1 per rank)");
    CollectiveScope scope(*session_, *collective_seconds_, "all_gather");
    if (count == 0) return;
    const int n = static_cast<int>(count);
    LL_MPI_CHECK(MPI_Allgather(in, n, MPI_FLOAT, out, n, MPI_FLOAT, comm_));
  }

  void broadcast(void* bytes, int64_t count, int root) override {
    check(count >= 0, "parallel", "broadcast of " + std::to_string(count) + " bytes");
    check(root >= 0 && root < size_, "parallel",
          "broadcast from rank " + std::to_string(root) + " in a world of " +
              std::to_string(size_) + " ranks");
    CollectiveScope scope(*session_, *collective_seconds_, "broadcast");
    auto* data = static_cast<unsigned char*>(bytes);
    for (int64_t done = 0; done < count;) {
      const int chunk = static_cast<int>(std::min(count - done, kMaxChunk));
      LL_MPI_CHECK(MPI_Bcast(data + done, chunk, MPI_BYTE, root, comm_));
      done += chunk;
    }
  }

  void barrier() override {
    CollectiveScope scope(*session_, *collective_seconds_, "barrier");
    LL_MPI_CHECK(MPI_Barrier(comm_));
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    check(color >= 0, "parallel", "split: color must be >= 0, got " + std::to_string(color));
    MPI_Comm child = MPI_COMM_NULL;
    {
      CollectiveScope scope(*session_, *collective_seconds_, "split");
      LL_MPI_CHECK(MPI_Comm_split(comm_, color, key, &child));
    }
    return std::make_unique<MpiCommunicator>(session_, child, collective_seconds_);
  }

  [[noreturn]] void abort(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);  // the whole run, not only this communicator's group
    std::_Exit(code);
  }

 private:
  template <typename T>
  void reduce(T* data, int64_t count, MPI_Datatype type, ReduceOp op) {
    check(count >= 0, "parallel", "all_reduce of " + std::to_string(count) + " elements");
    CollectiveScope scope(*session_, *collective_seconds_, "all_reduce");
    for (int64_t done = 0; done < count;) {
      const int chunk = static_cast<int>(std::min(count - done, kMaxChunk));
      LL_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + done, chunk, type, mpi_op(op), comm_));
      done += chunk;
    }
  }

  std::shared_ptr<MpiSession> session_;  // released after the destructor freed comm_
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 0;
};

std::mutex g_session_mutex;
std::weak_ptr<MpiSession> g_session;
bool g_session_ended = false;  // MPI cannot be initialised twice in one process

std::shared_ptr<MpiSession> mpi_session() {
  std::lock_guard lock(g_session_mutex);
  if (auto session = g_session.lock()) return session;
  check(!g_session_ended, "parallel",
        "MPI was finalised when the last communicator was destroyed and cannot start again in "
        "this process: keep the world communicator for the whole run");
  auto session = std::shared_ptr<MpiSession>(new MpiSession(), [](MpiSession* ended) {
    {
      std::lock_guard end_lock(g_session_mutex);
      g_session_ended = true;
    }
    delete ended;  // MPI_Finalize
  });
  g_session = session;
  return session;
}

}  // namespace

std::unique_ptr<Communicator> make_mpi_world() {
  std::shared_ptr<MpiSession> session = mpi_session();
  // A duplicate of MPI_COMM_WORLD keeps our collectives apart from any other MPI user's.
  MPI_Comm world = MPI_COMM_NULL;
  LL_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &world));
  auto communicator = std::make_unique<MpiCommunicator>(session, world, nullptr);
  const int expected = mpi_launch_size();
  check(expected < 0 || expected == communicator->size(), "parallel",
        "the launcher started " + std::to_string(expected) + " processes (" +
            mpi_launch_variable() + ") but MPI sees " + std::to_string(communicator->size()) +
            ": was this run started by the mpirun of another MPI than the one llama-lora was "
            "built with (Open MPI)?");
  return communicator;
}

}  // namespace detail
}  // namespace ll

#else  // a build without MPI

namespace ll {

bool built_with_mpi() {
  return false;
}

namespace detail {

std::unique_ptr<Communicator> make_mpi_world() {
  fail("parallel", "this process was started by mpirun (" + mpi_launch_variable() +
                       ") but llama-lora was built without MPI: install libopenmpi-dev and "
                       "openmpi-bin (apt-get install libopenmpi-dev openmpi-bin, or "
                       "scripts/setup --deps) and rebuild with cmake -DLL_WITH_MPI=ON");
}

}  // namespace detail
}  // namespace ll

#endif
