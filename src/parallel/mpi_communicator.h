// Private to parallel/: the seam between communicator.cpp (which picks the world) and
// mpi_communicator.cpp (MPI, or the stub of a build without it). Callers use communicator.h.
#pragma once

#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace ll::detail {

// The processes mpirun started, over a duplicate of MPI_COMM_WORLD (mpi_communicator.cpp).
// Initialises MPI on first use; the last communicator of the process finalises it. The
// stub of a build without MPI throws an ll::Error saying how to get a build with it.
std::unique_ptr<Communicator> make_mpi_world();

// The launcher's environment variable that says mpirun started this process, as
// "OMPI_COMM_WORLD_SIZE=3"; "" when none is set (communicator.cpp).
std::string mpi_launch_variable();

// The number of processes the launcher says it started; -1 when it does not say.
int mpi_launch_size();

}  // namespace ll::detail
