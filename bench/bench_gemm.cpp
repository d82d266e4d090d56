// CPU GEMM throughput (GFLOP/s) of the linear layers of smol-135m (hidden 576, 3 kv heads of
// 64, intermediate 1536) over T tokens: the forward y = x·Wᵀ and the input gradient dx = dy·W,
// with f32 and bf16 weights, for every micro-kernel the CPU supports; plus the plain gemm
// [512×576]·[576×1536] and the fused LM head + cross-entropy (vocab 49152). One JSON line per
// case, median (and best) of --reps runs after one warm-up.
//
// --mode decode: the same layers and the LM head (576 -> 49152) with 1-8 token rows, as KV-cache
// decoding runs them, through the packed path (few-rows threshold 0) and the few-rows path
// (gemm.h's default), one line each: GFLOP/s and GB/s of weight bytes read. Each timed run
// cycles through copies of the weight totalling >= 64 MiB, so the weights come from DRAM as in
// decoding a model larger than the L3, not from a warm cache. Also the LoRA weight gradient
// dA = duᵀ·x (r = 8 rows, k = --tokens), the one training GEMM with few rows.
//
//   ./build/release/bench/bench_gemm [--mode train|decode|lora|all] [--tokens 2048] [--reps 5]
//                                    [--kernel auto|all|NAME] [--rows 1,4,8] [--few_rows N]
// --mode lora: one LoRA target's six thin products (rank 8) in fp32, bf16 through oneDNN, and
// gemm_thin (fp32 and bf16 operands; what the backend runs).
// --few_rows sets the threshold of the few-rows runs (default gemm.h's), to measure where the
// packed path catches up.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/cpu/cross_entropy.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/gemm_thin.h"
#include "backend/cpu/matmul_bf16.h"
#include "core/dtype.h"

namespace {

using Clock = std::chrono::steady_clock;
using ll::cpu::Accumulate;
using ll::cpu::GemmKernel;
using ll::cpu::WeightView;

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

struct Timing {
  double median_s;
  double best_s;  // the machines are shared: the best run shows what the code can do
};

template <typename F>
Timing time_runs(int reps, F run) {
  run();  // warm-up: page faults, packing buffers
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    const auto start = Clock::now();
    run();
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  return {median(times), *std::min_element(times.begin(), times.end())};
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> out(n);
  for (float& v : out) v = dist(rng);
  return out;
}

struct Weights {  // one weight in both dtypes
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  WeightView view(ll::DType dtype) const {
    return dtype == ll::DType::F32 ? ll::cpu::weight_f32(f32.data())
                                   : ll::cpu::weight_bf16(bf16.data());
  }
};

Weights make_weights(int64_t rows, int64_t cols, uint32_t seed) {
  Weights w;
  w.f32 = random_floats(static_cast<size_t>(rows * cols), seed);
  for (float& v : w.f32) v *= 0.05f;
  w.bf16.resize(w.f32.size());
  for (size_t i = 0; i < w.f32.size(); ++i) {
    w.bf16[i] = ll::f32_to_bf16(w.f32[i]);
    w.f32[i] = ll::bf16_to_f32(w.bf16[i]);
  }
  return w;
}

void print_line(const char* op, const char* name, int64_t m, int64_t n, int64_t k,
                const char* weights, Timing timing, double flops) {
  std::printf(
      "{\"bench\":\"gemm\",\"op\":\"%s\",\"shape\":\"%s\",\"m\":%lld,\"n\":%lld,\"k\":%lld,"
      "\"weights\":\"%s\",\"kernel\":\"%s\",\"threads\":%d,\"ms\":%.3f,\"gflops\":%.1f,"
      "\"best_ms\":%.3f,\"best_gflops\":%.1f}\n",
      op, name, static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k),
      weights, ll::cpu::gemm_kernel_name(ll::cpu::gemm_kernel_active()), omp_get_max_threads(),
      timing.median_s * 1e3, flops / timing.median_s * 1e-9, timing.best_s * 1e3,
      flops / timing.best_s * 1e-9);
  std::fflush(stdout);
}

// ---- lora: the six thin products of one LoRA target (rank r) -----------------------------
// gemm_thin (what the CPU backend's gemm runs for these shapes) with a gemm's signature.
template <ll::cpu::OperandRounding rounding>
void thin_gemm(ll::Transpose ta, ll::Transpose tb, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
               int64_t ldc) {
  ll::cpu::gemm_thin(rounding, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// forward u = x·Aᵀ, y += s·u·Bᵀ; backward dB += s·dyᵀ·u, du = s·dy·B, dA += duᵀ·x, dx += du·A;
// each through fp32 gemm, oneDNN's bf16 matmul (operands rounded in a separate pass) and
// gemm_thin.
void run_lora_cases(int64_t tokens, int reps) {
  struct Target {
    const char* name;
    int64_t in, out;
  };
  const int64_t r = 8;
  for (const Target& t : {Target{"q_proj", 576, 576}, Target{"k_proj", 576, 192},
                          Target{"gate_proj", 576, 1536}, Target{"down_proj", 1536, 576}}) {
    const std::vector<float> x = random_floats(static_cast<size_t>(tokens * t.in), 1);
    const std::vector<float> dy = random_floats(static_cast<size_t>(tokens * t.out), 2);
    const std::vector<float> a = random_floats(static_cast<size_t>(r * t.in), 3);
    const std::vector<float> b = random_floats(static_cast<size_t>(t.out * r), 4);
    std::vector<float> u(static_cast<size_t>(tokens * r)), du(u.size());
    std::vector<float> y(static_cast<size_t>(tokens * t.out)), dx(x.size());
    std::vector<float> da(a.size()), db(b.size());
    using ll::Transpose;
    using Gemm = void (*)(Transpose, Transpose, int64_t, int64_t, int64_t, float, const float*,
                          int64_t, const float*, int64_t, float, float*, int64_t);
    const auto step = [&](Gemm g) {
      const Transpose N = Transpose::No, T = Transpose::Yes;
      g(N, T, tokens, r, t.in, 1.0f, x.data(), t.in, a.data(), t.in, 0.0f, u.data(), r);
      g(N, T, tokens, t.out, r, 2.0f, u.data(), r, b.data(), r, 1.0f, y.data(), t.out);
      g(T, N, t.out, r, tokens, 2.0f, dy.data(), t.out, u.data(), r, 1.0f, db.data(), r);
      g(N, N, tokens, r, t.out, 2.0f, dy.data(), t.out, b.data(), r, 0.0f, du.data(), r);
      g(T, N, r, t.in, tokens, 1.0f, du.data(), r, x.data(), t.in, 1.0f, da.data(), t.in);
      g(N, N, tokens, t.in, r, 1.0f, du.data(), r, a.data(), t.in, 1.0f, dx.data(), t.in);
    };
    // 3 products against `in` and 3 against `out`, 2·tokens·r multiply-adds per feature each.
    const double per_feature = 2.0 * static_cast<double>(tokens) * static_cast<double>(r);
    const double flops = 3.0 * per_feature * static_cast<double>(t.in + t.out);
    struct Impl {
      const char* name;
      Gemm gemm;
    };
    std::vector<Impl> impls = {{"fp32", ll::cpu::gemm<float>}};
    if (ll::cpu::bf16_matmul_available()) impls.push_back({"bf16_onednn", ll::cpu::bf16_gemm});
    if (ll::cpu::gemm_thin_applies(Transpose::No, Transpose::Yes, tokens, r, t.in)) {
      impls.push_back({"thin_fp32", thin_gemm<ll::cpu::OperandRounding::None>});
      impls.push_back({"thin_bf16", thin_gemm<ll::cpu::OperandRounding::Bf16>});
    }
    for (const Impl& impl : impls) {
      const Timing timing = time_runs(reps, [&] { step(impl.gemm); });
      print_line("lora_step", (std::string(t.name) + "/" + impl.name).c_str(), tokens, t.out, t.in,
                 "-", timing, flops);
    }
  }
}

// ---- decode: a few token rows -------------------------------------------------------------

// Copies of one weight [rows, cols], enough to total >= 64 MiB in the larger dtype (f32).
struct WeightCopies {
  std::vector<Weights> copies;
  WeightCopies(int64_t rows, int64_t cols) {
    const int64_t bytes = rows * cols * 4;
    const int64_t count = std::max<int64_t>(1, ((int64_t{64} << 20) + bytes - 1) / bytes);
    for (int64_t c = 0; c < count; ++c) {
      copies.push_back(make_weights(rows, cols, static_cast<uint32_t>(100 + c)));
    }
  }
};

void print_decode_line(const char* op, const char* name, const char* path, int64_t m, int64_t n,
                       int64_t k, const char* weights, Timing per_call, double flops,
                       double weight_bytes) {
  std::printf(
      "{\"bench\":\"gemm_decode\",\"op\":\"%s\",\"shape\":\"%s\",\"path\":\"%s\",\"m\":%lld,"
      "\"n\":%lld,\"k\":%lld,\"weights\":\"%s\",\"kernel\":\"%s\",\"threads\":%d,\"us\":%.2f,"
      "\"gflops\":%.2f,\"weight_gbps\":%.2f,\"best_us\":%.2f,\"best_gflops\":%.2f}\n",
      op, name, path, static_cast<long long>(m), static_cast<long long>(n),
      static_cast<long long>(k), weights, ll::cpu::gemm_kernel_name(ll::cpu::gemm_kernel_active()),
      omp_get_max_threads(), per_call.median_s * 1e6, flops / per_call.median_s * 1e-9,
      weight_bytes / per_call.median_s * 1e-9, per_call.best_s * 1e6,
      flops / per_call.best_s * 1e-9);
  std::fflush(stdout);
}

// The few-rows threshold of the "few_rows" runs (--few_rows).
int64_t g_few_rows = ll::cpu::kGemmFewRowsDefault;

// The two paths of one case: packed (threshold 0), then few rows (threshold g_few_rows).
template <typename F>
void compare_paths(int reps, int64_t calls_per_run, F print_case) {
  for (const bool few_rows : {false, true}) {
    ll::cpu::gemm_few_rows_select(few_rows ? g_few_rows : 0);
    print_case(few_rows ? "few_rows" : "packed", [&](auto run) {
      Timing t = time_runs(reps, run);
      t.median_s /= static_cast<double>(calls_per_run);
      t.best_s /= static_cast<double>(calls_per_run);
      return t;
    });
  }
  ll::cpu::gemm_few_rows_select(ll::cpu::kGemmFewRowsDefault);
}

void run_decode_cases(const std::vector<int64_t>& row_counts, int64_t tokens, int reps) {
  struct Linear {
    const char* name;
    int64_t in, out;
  };
  const Linear linears[] = {{"gate_proj", 576, 1536},
                            {"down_proj", 1536, 576},
                            {"q_proj", 576, 576},
                            {"k_proj", 576, 192},
                            {"lm_head", 576, 49152}};
  for (const Linear& l : linears) {
    const WeightCopies w(l.out, l.in);
    const auto calls = static_cast<int64_t>(w.copies.size());
    for (ll::DType dtype : {ll::DType::BF16, ll::DType::F32}) {
      const char* dname = dtype == ll::DType::F32 ? "f32" : "bf16";
      const double weight_bytes =
          static_cast<double>(l.in * l.out * (dtype == ll::DType::F32 ? 4 : 2));
      for (int64_t m : row_counts) {
        const std::vector<float> x = random_floats(static_cast<size_t>(m * l.in), 2);
        const std::vector<float> dy = random_floats(static_cast<size_t>(m * l.out), 3);
        std::vector<float> y(static_cast<size_t>(m * l.out));
        std::vector<float> dx(static_cast<size_t>(m * l.in));
        const double flops = 2.0 * static_cast<double>(m * l.in * l.out);
        compare_paths(reps, calls, [&](const char* path, auto time) {
          const Timing forward = time([&] {
            for (const Weights& copy : w.copies) {
              ll::cpu::linear_forward(y.data(), x.data(), copy.view(dtype), m, l.in, l.out,
                                      Accumulate::No);
            }
          });
          print_decode_line("linear_forward", l.name, path, m, l.out, l.in, dname, forward, flops,
                            weight_bytes);
        });
        if (l.out == 49152) continue;  // the LM head has no input gradient in decoding
        compare_paths(reps, calls, [&](const char* path, auto time) {
          const Timing backward = time([&] {
            for (const Weights& copy : w.copies) {
              ll::cpu::linear_backward_input(dx.data(), dy.data(), copy.view(dtype), m, l.in, l.out,
                                             Accumulate::No);
            }
          });
          print_decode_line("linear_backward_input", l.name, path, m, l.in, l.out, dname, backward,
                            flops, weight_bytes);
        });
      }
    }
  }
  // LoRA dA[r, in] += duᵀ[r, T] · x[T, in] (r = 8, 16): few rows of C, k = tokens.
  for (const int64_t r : {int64_t{8}, int64_t{16}}) {
    for (const int64_t in : {int64_t{576}, int64_t{1536}}) {
      const std::vector<float> du = random_floats(static_cast<size_t>(tokens * r), 4);
      const std::vector<float> x = random_floats(static_cast<size_t>(tokens * in), 5);
      std::vector<float> da(static_cast<size_t>(r * in));
      const double flops = 2.0 * static_cast<double>(r * in * tokens);
      compare_paths(reps, 1, [&](const char* path, auto time) {
        const Timing t = time([&] {
          ll::cpu::gemm(ll::cpu::Transpose::Yes, ll::cpu::Transpose::No, r, in, tokens, 1.0f,
                        du.data(), r, x.data(), in, 1.0f, da.data(), in);
        });
        const std::string name = "lora_dA_r" + std::to_string(r) + "_in" + std::to_string(in);
        print_decode_line("gemm", name.c_str(), path, r, in, tokens, "f32", t, flops,
                          4.0 * static_cast<double>(tokens * in));
      });
    }
  }
}

void run_kernel_cases(int64_t tokens, int reps) {
  struct Linear {
    const char* name;
    int64_t in, out;
  };
  const Linear linears[] = {{"q_proj", 576, 576},
                            {"k_proj", 576, 192},
                            {"gate_proj", 576, 1536},
                            {"down_proj", 1536, 576}};
  for (const Linear& l : linears) {
    const Weights w = make_weights(l.out, l.in, 1);
    const std::vector<float> x = random_floats(static_cast<size_t>(tokens * l.in), 2);
    const std::vector<float> dy = random_floats(static_cast<size_t>(tokens * l.out), 3);
    std::vector<float> y(static_cast<size_t>(tokens * l.out));
    std::vector<float> dx(static_cast<size_t>(tokens * l.in));
    const double flops = 2.0 * static_cast<double>(tokens * l.in * l.out);
    for (ll::DType dtype : {ll::DType::F32, ll::DType::BF16}) {
      const char* dname = dtype == ll::DType::F32 ? "f32" : "bf16";
      const WeightView view = w.view(dtype);
      const Timing forward = time_runs(reps, [&] {
        ll::cpu::linear_forward(y.data(), x.data(), view, tokens, l.in, l.out, Accumulate::No);
      });
      print_line("linear_forward", l.name, tokens, l.out, l.in, dname, forward, flops);
      const Timing backward = time_runs(reps, [&] {
        ll::cpu::linear_backward_input(dx.data(), dy.data(), view, tokens, l.in, l.out,
                                       Accumulate::No);
      });
      print_line("linear_backward_input", l.name, tokens, l.in, l.out, dname, backward, flops);
    }
  }
  // The plain activation GEMM of the issue: [512×576]·[576×1536].
  {
    const int64_t m = 512, k = 576, n = 1536;
    const std::vector<float> a = random_floats(static_cast<size_t>(m * k), 4);
    const std::vector<float> b = random_floats(static_cast<size_t>(k * n), 5);
    std::vector<float> c(static_cast<size_t>(m * n));
    const Timing seconds = time_runs(reps, [&] {
      ll::cpu::gemm(ll::cpu::Transpose::No, ll::cpu::Transpose::No, m, n, k, 1.0f, a.data(), k,
                    b.data(), n, 0.0f, c.data(), n);
    });
    print_line("gemm", "512x576x1536", m, n, k, "f32", seconds,
               2.0 * static_cast<double>(m * n * k));
  }
}

// The fused LM head + cross-entropy of a training step: forward and input gradient of the
// [vocab, hidden] head over all tokens (4·T·V·C FLOPs), chunked.
void run_cross_entropy(int64_t tokens, int reps) {
  const int64_t hidden = 576, vocab = 49152;
  const Weights w = make_weights(vocab, hidden, 7);
  const std::vector<float> h = random_floats(static_cast<size_t>(tokens * hidden), 8);
  std::vector<int32_t> labels(static_cast<size_t>(tokens));
  std::mt19937 rng(9);
  for (int32_t& label : labels) label = static_cast<int32_t>(rng() % vocab);
  std::vector<float> dh(h.size());
  const double flops = 4.0 * static_cast<double>(tokens * vocab * hidden);
  for (int64_t chunk : {64, 256}) {
    for (ll::DType dtype : {ll::DType::F32, ll::DType::BF16}) {
      const Timing seconds = time_runs(std::max(1, reps / 2), [&] {
        ll::cpu::cross_entropy_forward_backward(dh.data(), h.data(), w.view(dtype), labels.data(),
                                                tokens, hidden, vocab,
                                                1.0 / static_cast<double>(tokens), chunk);
      });
      const std::string name = "lm_head_ce_chunk" + std::to_string(chunk);
      print_line("cross_entropy_forward_backward", name.c_str(), tokens, vocab, hidden,
                 dtype == ll::DType::F32 ? "f32" : "bf16", seconds, flops);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int64_t tokens = 2048;
    int reps = 5;
    std::string kernel = "all";
    std::string mode = "train";
    std::vector<int64_t> row_counts = {1, 4, 8};
    for (int i = 1; i + 1 < argc; i += 2) {
      if (std::strcmp(argv[i], "--tokens") == 0) tokens = std::stoll(argv[i + 1]);
      if (std::strcmp(argv[i], "--reps") == 0) reps = std::stoi(argv[i + 1]);
      if (std::strcmp(argv[i], "--kernel") == 0) kernel = argv[i + 1];
      if (std::strcmp(argv[i], "--mode") == 0) mode = argv[i + 1];
      if (std::strcmp(argv[i], "--few_rows") == 0) g_few_rows = std::stoll(argv[i + 1]);
      if (std::strcmp(argv[i], "--rows") == 0) {
        row_counts.clear();
        const std::string list = argv[i + 1];
        for (size_t pos = 0; pos < list.size();) {
          const size_t comma = std::min(list.find(',', pos), list.size());
          row_counts.push_back(std::stoll(list.substr(pos, comma - pos)));
          pos = comma + 1;
        }
      }
    }
    if (mode == "lora") {
      run_lora_cases(tokens, reps);
      return 0;
    }
    if (mode != "train" && mode != "decode" && mode != "all") {
      throw std::runtime_error("--mode must be train, decode, lora or all, got " + mode);
    }
    std::vector<GemmKernel> kernels;
    for (GemmKernel k : {GemmKernel::Avx512, GemmKernel::Avx2, GemmKernel::Portable}) {
      if (!ll::cpu::gemm_kernel_supported(k)) continue;
      if (kernel == "all" || kernel == ll::cpu::gemm_kernel_name(k)) kernels.push_back(k);
    }
    if (kernel == "auto") kernels = {GemmKernel::Auto};
    for (GemmKernel k : kernels) {
      ll::cpu::gemm_kernel_select(k);
      if (mode != "decode") run_kernel_cases(tokens, reps);
      if (mode != "train") run_decode_cases(row_counts, tokens, reps);
    }
    ll::cpu::gemm_kernel_select(GemmKernel::Auto);
    if (mode != "decode") run_cross_entropy(tokens, reps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gemm: %s\n", e.what());
    return 1;
  }
  return 0;
}
