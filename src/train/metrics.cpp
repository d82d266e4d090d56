// See metrics.h.
#include "train/metrics.h"

#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/text.h"

namespace ll {

MetricsWriter::MetricsWriter(const fs::path& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "ab");
  if (!file_) fail("train", path.string() + ": cannot open for writing: " + std::strerror(errno));
}

MetricsWriter::~MetricsWriter() {
  if (file_) std::fclose(file_);
}

void MetricsWriter::write(const nlohmann::json& line) {
  if (!file_) return;
  const std::string text = line.dump() + "\n";
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0) {
    fail("train", path_.string() + ": write failed: " + std::strerror(errno));
  }
}

double lora_flops_per_token(const LlamaConfig& c, int64_t lora_parameters, double mean_context) {
  const double hidden = static_cast<double>(c.hidden_size);
  const double q_out = static_cast<double>(c.num_attention_heads * c.head_dim);
  const double kv_out = static_cast<double>(c.num_key_value_heads * c.head_dim);
  const double inter = static_cast<double>(c.intermediate_size);
  // q, k, v, o, gate, up, down per layer, plus the LM head (tied or not, it is a matmul).
  const double per_layer = hidden * q_out * 2 + hidden * kv_out * 2 + 3 * hidden * inter;
  const double p_lin = per_layer * static_cast<double>(c.num_hidden_layers) +
                       static_cast<double>(c.vocab_size) * hidden;
  const double f_att = 2 * static_cast<double>(c.num_hidden_layers) * mean_context * q_out;
  return 4 * p_lin + 6 * f_att + 6 * static_cast<double>(lora_parameters);
}

std::optional<PeakFlops> cpu_peak_flops() {
  std::ifstream in("/proc/cpuinfo");
  if (!in) return std::nullopt;
  double mhz = 0;
  bool amx = false, avx512 = false;
  std::string line;
  bool seen_flags = false, seen_mhz = false;
  while (std::getline(in, line) && !(seen_flags && seen_mhz)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    const std::string value = line.substr(colon + 1);
    if (key == "cpu MHz" && !seen_mhz) {
      mhz = std::atof(value.c_str());
      seen_mhz = true;
    } else if (key == "flags" && !seen_flags) {
      std::istringstream words(value);
      std::string flag;
      while (words >> flag) {
        if (flag == "amx_bf16") amx = true;
        if (flag == "avx512f") avx512 = true;
      }
      seen_flags = true;
    }
  }
  const unsigned cores = std::thread::hardware_concurrency();
  if (!(mhz > 0) || cores == 0 || !(amx || avx512)) return std::nullopt;
  const double per_cycle = amx ? 1024.0 : 64.0;
  PeakFlops peak;
  peak.flops_per_s = per_cycle * static_cast<double>(cores) * mhz * 1e6;
  char text[160];
  std::snprintf(text, sizeof text, "%u cores x %.2f GHz x %.0f FLOP/cycle (%s) = %.1f GFLOP/s",
                cores, mhz / 1000.0, per_cycle, amx ? "AMX bf16" : "AVX-512 fp32",
                peak.flops_per_s / 1e9);
  peak.description = text;
  return peak;
}

int64_t peak_rss_bytes() {
  struct rusage usage {};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

ProgressStyle progress_style_for(std::FILE* stream) {
  return isatty(fileno(stream)) ? ProgressStyle::Bar : ProgressStyle::Lines;
}

ProgressStyle default_progress_style() {
  return progress_style_for(stderr);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = static_cast<int64_t>(std::llround(seconds));
  char text[48];
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%lldh%02lldm", static_cast<long long>(total / 3600),
                  static_cast<long long>(total / 60 % 60));
  } else if (total >= 60) {
    std::snprintf(text, sizeof text, "%lldm%02llds", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  } else {
    std::snprintf(text, sizeof text, "%llds", static_cast<long long>(total));
  }
  return text;
}

std::string format_progress(const ProgressFigures& f) {
  const std::string tps = format_count(static_cast<uint64_t>(std::max(0.0, f.tokens_per_s)));
  char text[256];
  std::snprintf(text, sizeof text, "%lld/%lld loss %.4f lr %.3g tok/s %s ETA %s mem %s",
                static_cast<long long>(f.step), static_cast<long long>(f.total), f.loss,
                f.learning_rate, tps.c_str(), format_duration(f.eta_s).c_str(),
                format_bytes(static_cast<uint64_t>(std::max<int64_t>(0, f.memory_bytes))).c_str());
  return text;
}

namespace {

// Columns of the terminal behind `stream`; 0 when unknown.
int terminal_columns(std::FILE* stream) {
  struct winsize size {};
  if (ioctl(fileno(stream), TIOCGWINSZ, &size) != 0) return 0;
  return size.ws_col;
}

}  // namespace

void Progress::on_step(const ProgressFigures& figures, StepLogged logged) {
  if (style_ == ProgressStyle::Quiet) return;
  if (style_ == ProgressStyle::Lines) {
    if (logged == StepLogged::No) return;
    std::fprintf(out_, "[train] step %s\n", format_progress(figures).c_str());
    std::fflush(out_);
    return;
  }
  constexpr int kWidth = 24;
  const double fraction =
      figures.total > 0 ? static_cast<double>(figures.step) / static_cast<double>(figures.total)
                        : 1;
  const int filled = std::clamp(static_cast<int>(fraction * kWidth), 0, kWidth);
  // Appended piece by piece: GCC 12 warns (-Wrestrict, falsely) on "[" + std::string(...).
  std::string line(1, '[');
  line.append(static_cast<size_t>(filled), '#');
  line.append(static_cast<size_t>(kWidth - filled), '.');
  line.append("] ");
  line.append(format_progress(figures));
  // The text is ASCII: one byte a column.
  const int columns = terminal_columns(out_);
  if (columns > 1 && line.size() > static_cast<size_t>(columns - 1)) line.resize(columns - 1);
  std::fprintf(out_, "\r\033[K%s", line.c_str());
  std::fflush(out_);
  bar_shown_ = true;
}

void Progress::clear_bar() {
  if (bar_shown_) {
    std::fprintf(out_, "\r\033[K");
    bar_shown_ = false;
  }
}

void Progress::message(const std::string& text) {
  if (style_ == ProgressStyle::Quiet) return;
  clear_bar();
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
}

void Progress::finish() {
  if (bar_shown_) {
    std::fprintf(out_, "\n");
    std::fflush(out_);
    bar_shown_ = false;
  }
}

}  // namespace ll
