# The backend boundary, enforced (run by ctest as layers.backend_boundary):
#   - backend/backend.h, backend/ops.h and backend/backend.cpp include nothing from a
#     backend's own folder (backend/cpu/ includes backend/, never the reverse);
#   - no layer above the backend (model/, train/, tools/, app/, ...) includes backend/cpu/ or
#     calls a cpu:: function: they reach every op through Backend (backend/backend.h).
# Usage: cmake -DSOURCE_DIR=<repo> -P check_layers.cmake
if(NOT SOURCE_DIR)
  message(FATAL_ERROR "check_layers.cmake: give -DSOURCE_DIR=<repository root>")
endif()

set(violations "")
foreach(file backend/backend.h backend/ops.h backend/backend.cpp)
  file(STRINGS "${SOURCE_DIR}/src/${file}" hits REGEX "#include \"backend/cpu/")
  foreach(hit IN LISTS hits)
    list(APPEND violations "src/${file}: ${hit}")
  endforeach()
endforeach()

file(GLOB_RECURSE above RELATIVE "${SOURCE_DIR}/src"
     "${SOURCE_DIR}/src/*.h" "${SOURCE_DIR}/src/*.cpp")
list(FILTER above EXCLUDE REGEX "^backend/")
foreach(file IN LISTS above)
  file(STRINGS "${SOURCE_DIR}/src/${file}" hits REGEX "#include \"backend/cpu/|cpu::")
  foreach(hit IN LISTS hits)
    list(APPEND violations "src/${file}: ${hit}")
  endforeach()
endforeach()

list(LENGTH above checked)
if(violations)
  list(JOIN violations "\n  " text)
  message(FATAL_ERROR "the backend boundary is crossed:\n  ${text}")
endif()
message(STATUS "backend boundary holds (${checked} files above backend/ checked)")
