// Collectives between the processes of a run (DESIGN.md "parallel/"): the trainer reduces
// LoRA gradients over data-parallel ranks and the model reduces partial activations over
// tensor-parallel ranks through this interface, never through MPI directly.
//
// Implementations, chosen at run time by world_communicator():
//   single   one process (size 1): every collective is a no-op or a copy
//   mpi      the processes mpirun (or the Kubeflow MPI Operator) started, over MPI_COMM_WORLD;
//            a build without MPI has a stub that fails with a clear error when a run is
//            launched by mpirun (callers have no #ifdef)
//   threads  n ranks as threads of one process (tests: tp/dp without a launcher)
//
// Every rank of a communicator must call the same collectives in the same order with the
// same counts. A collective that waits longer than the timeout (set_collective_timeout;
// HF's --ddp_timeout) aborts the whole run with an error naming the collective, so a rank
// that died or hung never leaves the others waiting for ever. (mpi: a watchdog thread prints
// the line and calls MPI_Abort; threads: the waiting rank throws ll::Error, and every later
// collective of that world throws too.)
//
// Sums are bit-identical on every rank: single and threads sum in rank order 0..n-1; mpi uses
// MPI_Allreduce, whose OpenMPI algorithms compute each element once or symmetrically
// (tests/parallel_mpi/mpi_check.cpp checks the bits across ranks).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/reduce_op.h"

namespace ll {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "single", "mpi", "threads"

  // data[count] = op over ranks of every rank's data[count], on every rank.
  virtual void all_reduce(float* data, int64_t count, ReduceOp op) = 0;
  virtual void all_reduce(double* data, int64_t count, ReduceOp op) = 0;
  virtual void all_reduce(int64_t* data, int64_t count, ReduceOp op) = 0;
  // out[size * count] = every rank's in[count], in rank order, on every rank.
  virtual void all_gather(const float* in, int64_t count, float* out) = 0;
  // bytes[count] of rank `root` copied to every rank.
  virtual void broadcast(void* bytes, int64_t count, int root) = 0;
  virtual void barrier() = 0;

  // The ranks of this communicator with the same `color` (>= 0) form a new one, ordered by
  // `key`, ties by rank (MPI_Comm_split). Collective: every rank calls it.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  // Ends the whole run (every process of the world) with exit code `code`, after the caller
  // printed why: an error on one rank must not leave the others waiting in a collective.
  [[noreturn]] virtual void abort(int code) = 0;

  // Wall seconds this process spent inside this communicator's collectives (and those of the
  // communicators split from it), for the communication share of a step.
  double seconds_in_collectives() const;

 protected:
  // Implementations add the time of each collective here (shared with split children).
  std::shared_ptr<double> collective_seconds_ = std::make_shared<double>(0.0);
};

// The processes of this run: MPI when launched by mpirun / an MPI operator (the environment
// says so), else a single process. Initialises MPI on first use; the returned object
// finalises it. Error (ll::Error) when launched by mpirun with a build that has no MPI.
std::unique_ptr<Communicator> world_communicator();

// Whether this build has MPI, and whether the environment says mpirun started this process.
bool built_with_mpi();
bool launched_by_mpi();

// How many processes of this run share this machine, as the launcher says (1 when it does
// not): CPU ranks split the cores between them.
int processes_on_this_machine();

// A world of one process.
std::unique_ptr<Communicator> single_communicator();

// `size` communicators of one in-process world, one per rank; rank i's must be used by one
// thread at a time (tests run each rank in its own thread).
std::vector<std::unique_ptr<Communicator>> thread_communicators(int size);

// Seconds a collective may wait for the other ranks before the run aborts (default 1800,
// as HF's ddp_timeout); <= 0 waits for ever.
void set_collective_timeout(double seconds);
double collective_timeout();

// Tensor- and data-parallel groups of a world of tp × dp ranks. Ranks of one tensor-parallel
// group are consecutive (world rank = dp_rank · tp_size + tp_rank), so a tp group stays
// inside one machine when each machine runs a multiple of tp_size ranks (as Megatron and
// Neuron lay them out).
struct ParallelGroups {
  Communicator* world = nullptr;  // not owned
  std::unique_ptr<Communicator> tp;
  std::unique_ptr<Communicator> dp;
  int tp_rank() const { return tp->rank(); }
  int tp_size() const { return tp->size(); }
  int dp_rank() const { return dp->rank(); }
  int dp_size() const { return dp->size(); }
};

// Splits `world` (collective). Error naming --tensor_parallel_size when the world size does
// not divide by it.
ParallelGroups make_parallel_groups(Communicator& world, int tensor_parallel_size);

}  // namespace ll
