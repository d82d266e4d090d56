// What a training run reports: metrics.jsonl (one JSON object per line, appended and flushed
// as the run goes, so a crash keeps every line written so far), the terminal progress (a
// one-line bar redrawn with \r when stderr is a terminal, plain log lines otherwise), and the
// figures of docs/BENCHMARK.md: useful FLOPs per token for MFU, the CPU's peak, peak RSS.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/file.h"
#include "formats/llama_config.h"

namespace ll {

// Appends JSON lines to a file, flushing each line.
class MetricsWriter {
 public:
  MetricsWriter() = default;
  // Opens `path` for appending (created if missing). "[train] PATH: ..." when it cannot.
  explicit MetricsWriter(const fs::path& path);
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  ~MetricsWriter();

  void write(const nlohmann::json& line);
  bool is_open() const { return file_ != nullptr; }

 private:
  fs::path path_;
  std::FILE* file_ = nullptr;
};

// Useful FLOPs per trained token (BENCHMARK.md): 4·P_lin + 6·F_att + 6·P_lora with P_lin the
// matmul weights including the LM head, F_att = 2 · layers · mean_context · heads·head_dim,
// recomputation not counted.
double lora_flops_per_token(const LlamaConfig& config, int64_t lora_parameters,
                            double mean_context);

// The CPU's dense peak as BENCHMARK.md defines it: AMX bf16 (1024 FLOP/cycle/core) when the
// CPU has AMX, else AVX-512 fp32 (64 FLOP/cycle/core), times the cores and the clock. Cores:
// std::thread::hardware_concurrency() (logical CPUs: with SMT this counts each core twice and
// so understates MFU). Clock: the "cpu MHz" that /proc/cpuinfo reports (the nominal or
// current frequency; turbo is not counted). nullopt, and MFU is reported as null, when the
// CPU has neither AMX nor AVX-512 or the clock cannot be read.
struct PeakFlops {
  double flops_per_s = 0;
  std::string description;  // e.g. "2 cores x 2.60 GHz x 64 FLOP/cycle (AVX-512 fp32)"
};
std::optional<PeakFlops> cpu_peak_flops();

// Peak resident set size of this process in bytes (getrusage).
int64_t peak_rss_bytes();

enum class ProgressStyle { Bar, Lines, Quiet };
// Bar when stderr is a terminal, else Lines.
ProgressStyle default_progress_style();

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

// Terminal output of a run, on stderr.
class Progress {
 public:
  explicit Progress(ProgressStyle style) : style_(style) {}
  // After every optimizer step (the bar redraws; lines print only when `logged`).
  void on_step(int64_t step, int64_t total, double loss, double lr, double tokens_per_s,
               double eta_s, bool logged);
  // A message on its own line (clears the bar first).
  void message(const std::string& text);
  // Ends the bar's line.
  void finish();

 private:
  void clear_bar();
  ProgressStyle style_;
  bool bar_shown_ = false;
};

}  // namespace ll
