// How the CPU backend's OpenMP threads wait between parallel regions, decided inside the
// process.
//
// libgomp's default (OMP_WAIT_POLICY unset) spins about 300,000 times at every barrier before
// it sleeps. When anything else runs on the same cores (a second process, ctest -j2, the peer
// of a benchmark, another rank of an oversubscribed mpirun) the spinning threads take the
// cores from the threads doing the work: measured 10-40x slower steps on 2 cores. Waiting
// passively costs nothing we can measure on a quiet machine (every figure in
// docs/BENCHMARKS.md was taken that way). So unless the user set OMP_WAIT_POLICY or
// GOMP_SPINCOUNT themselves, the process runs with OMP_WAIT_POLICY=PASSIVE.
//
// libgomp reads its environment once, in its own initializer, which runs before any
// initializer of the executable; and a setenv from the executable's .preinit_array (which
// runs earlier) is undone when libc's initializer sets environ again. So this initializer sets
// the variable and starts the same program again (execv of /proc/self/exe, same pid, same
// arguments), whose libgomp then reads it; that start sees the variable set and goes on. If
// the exec fails, the process goes on with libgomp's default. The link pulls this file into
// every executable that links ll_backend (CMakeLists.txt names ll_openmp_wait_policy_anchor as
// an undefined symbol), although no code refers to it.
#include <unistd.h>

#include <cstdlib>

extern "C" {
// Named by the link (CMakeLists.txt) so that the archive member holding this file is linked.
extern const int ll_openmp_wait_policy_anchor;
const int ll_openmp_wait_policy_anchor = 0;
}

namespace {

// glibc calls an executable's initializers with main's arguments.
[[gnu::constructor]] void restart_with_passive_wait(int /*argc*/, char** argv, char** /*envp*/) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) {
    return;
  }
  if (argv == nullptr || setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: go on as started
}

}  // namespace
