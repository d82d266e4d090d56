// See matmul_bf16.h: the build without oneDNN (CMake did not find libdnnl-dev). bf16 matmuls
// are unavailable, so `--bf16 True` runs the fp32 path and says so; calling one throws.
#include <string>

#include "backend/cpu/matmul_bf16.h"
#include "core/error.h"

namespace ll::cpu {
namespace {

[[noreturn]] void unavailable(const char* what) {
  fail("bf16 matmul", std::string(what) +
                          ": this build has no oneDNN (apt-get install libdnnl-dev, then rebuild)");
}

}  // namespace

bool bf16_matmul_available() {
  return false;
}

std::string bf16_matmul_description() {
  return "built without oneDNN";
}

void bf16_gemm(Transpose, Transpose, int64_t, int64_t, int64_t, float, const float*, int64_t,
               const float*, int64_t, float, float*, int64_t) {
  unavailable("gemm");
}

void bf16_linear_forward(float*, const float*, WeightView, int64_t, int64_t, int64_t, Accumulate) {
  unavailable("linear_forward");
}

void bf16_linear_backward_input(float*, const float*, WeightView, int64_t, int64_t, int64_t,
                                Accumulate) {
  unavailable("linear_backward_input");
}

}  // namespace ll::cpu
