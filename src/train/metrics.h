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
// Bar when `stream` is a terminal, else Lines.
ProgressStyle progress_style_for(std::FILE* stream);
// progress_style_for(stderr).
ProgressStyle default_progress_style();

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

// What the progress shows after an optimizer step.
struct ProgressFigures {
  int64_t step = 0;  // 1-based
  int64_t total = 0;
  double loss = 0;
  double learning_rate = 0;
  double tokens_per_s = 0;
  double eta_s = 0;
  int64_t memory_bytes = 0;  // peak RSS
};

// Did this step write a metrics line? (Lines prints only those.)
enum class StepLogged { No, Yes };

// "12/100 loss 2.3456 lr 0.003 tok/s 12,345 ETA 1m05s mem 120.3 MiB".
std::string format_progress(const ProgressFigures& figures);

// Terminal output of a run, on `out` (stderr by default).
//   Bar    one line redrawn in place: "\r", the erase-line sequence ESC [ K, then
//          "[#####...] " + format_progress, cut to the terminal's width less one column (a
//          line that wrapped could not be redrawn by "\r"); messages erase it first and it
//          comes back at the next step.
//   Lines  "[train] step " + format_progress, one a logged step.
//   Quiet  nothing (ranks other than 0).
class Progress {
 public:
  explicit Progress(ProgressStyle style, std::FILE* out = stderr) : style_(style), out_(out) {}
  void on_step(const ProgressFigures& figures, StepLogged logged);
  // A message on its own line (clears the bar first).
  void message(const std::string& text);
  // Ends the bar's line.
  void finish();

 private:
  void clear_bar();
  ProgressStyle style_;
  std::FILE* out_;
  bool bar_shown_ = false;
};

}  // namespace ll
