// See metrics.h.
#include "train/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

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

ProgressStyle default_progress_style() {
  return isatty(STDERR_FILENO) ? ProgressStyle::Bar : ProgressStyle::Lines;
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

void Progress::on_step(int64_t step, int64_t total, double loss, double lr, double tokens_per_s,
                       double eta_s, bool logged) {
  if (style_ == ProgressStyle::Quiet) return;
  const std::string tps = format_count(static_cast<uint64_t>(std::max(0.0, tokens_per_s)));
  if (style_ == ProgressStyle::Lines) {
    if (!logged) return;
    std::fprintf(stderr, "[train] step %lld/%lld loss %.4f lr %.3g tok/s %s ETA %s\n",
                 static_cast<long long>(step), static_cast<long long>(total), loss, lr, tps.c_str(),
                 format_duration(eta_s).c_str());
    return;
  }
  constexpr int kWidth = 24;
  const double fraction = total > 0 ? static_cast<double>(step) / static_cast<double>(total) : 1;
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r\033[K[%s] %lld/%lld loss %.4f lr %.3g tok/s %s ETA %s", bar.c_str(),
               static_cast<long long>(step), static_cast<long long>(total), loss, lr, tps.c_str(),
               format_duration(eta_s).c_str());
  std::fflush(stderr);
  bar_shown_ = true;
}

void Progress::clear_bar() {
  if (bar_shown_) {
    std::fprintf(stderr, "\r\033[K");
    bar_shown_ = false;
  }
}

void Progress::message(const std::string& text) {
  if (style_ == ProgressStyle::Quiet) return;
  clear_bar();
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (bar_shown_) {
    std::fprintf(stderr, "\n");
    bar_shown_ = false;
  }
}

}  // namespace ll
