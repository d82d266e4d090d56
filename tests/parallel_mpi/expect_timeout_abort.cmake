# ctest parallel_mpi.timeout_aborts: runs `mpirun -n 3 mpi_check --hang-test`, where rank 1
# never joins an all_reduce and the collective timeout is 3 s. Passes only when the run ends
# with a non-zero exit AND a rank printed the watchdog's line naming all_reduce.
#   cmake -DMPIEXEC=... -DNUMPROC_FLAG=-n -DCHECK=.../mpi_check -P expect_timeout_abort.cmake
foreach(variable MPIEXEC NUMPROC_FLAG CHECK)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "expect_timeout_abort.cmake: -D${variable}=... is required")
  endif()
endforeach()

string(TIMESTAMP started "%s")
execute_process(
  COMMAND ${MPIEXEC} --oversubscribe ${NUMPROC_FLAG} 3 ${CHECK} --hang-test
  RESULT_VARIABLE exit_code
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err
  TIMEOUT 50)
string(TIMESTAMP ended "%s")
math(EXPR seconds "${ended} - ${started}")
message("mpirun exit: ${exit_code} after ${seconds} s\n--- stdout ---\n${out}--- stderr ---\n${err}")

set(expected "\\[parallel\\] rank [02]: all_reduce waited 3 s for the other ranks \\(a rank died or hung\\); aborting the run")
if(exit_code STREQUAL "0")
  message(FATAL_ERROR "the hung run exited 0: the watchdog did not abort it")
endif()
if(NOT exit_code MATCHES "^[0-9]+$")
  message(FATAL_ERROR "mpirun did not end by itself (${exit_code}): the watchdog did not fire")
endif()
if(NOT err MATCHES "${expected}")
  message(FATAL_ERROR "no watchdog line matching '${expected}' on stderr")
endif()
message("ok: the run ended with exit ${exit_code} and the watchdog line")
