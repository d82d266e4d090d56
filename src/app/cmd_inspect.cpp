// `llama-lora inspect MODEL_DIR`: what a Hugging Face Llama folder holds, checked.
// Prints the config's main fields, the parameter count and size from the actual tensors,
// and warns where the tensors disagree with what the config implies (missing, unexpected
// or mis-shaped tensors), so a bad download or a non-Llama checkpoint shows up before a
// training run. `--json` prints the same as one JSON object for scripts.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/cli.h"
#include "core/error.h"
#include "core/text.h"
#include "formats/input_checks.h"
#include "formats/llama_config.h"
#include "formats/safetensors.h"

namespace ll {
namespace {

using nlohmann::json;

struct InspectOptions {
  std::string model_dir;
  bool no_tensors = false;
  bool json_output = false;
};

struct Report {
  LlamaConfig config;
  std::string architecture;
  int64_t parameters = 0;           // from the tensors in the files
  int64_t expected_parameters = 0;  // from the config
  uint64_t total_bytes = 0;
  size_t file_count = 0;
  std::vector<std::string> warnings;
};

// "model.layers.2.x" before "model.layers.10.x": digit runs compare as numbers, so the
// table reads in layer order.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0;
  size_t j = 0;
  while (i < a.size() && j < b.size()) {
    const bool digit_a = std::isdigit(static_cast<unsigned char>(a[i])) != 0;
    const bool digit_b = std::isdigit(static_cast<unsigned char>(b[j])) != 0;
    if (digit_a && digit_b) {
      size_t end_a = i;
      size_t end_b = j;
      while (end_a < a.size() && std::isdigit(static_cast<unsigned char>(a[end_a]))) ++end_a;
      while (end_b < b.size() && std::isdigit(static_cast<unsigned char>(b[end_b]))) ++end_b;
      // Compare digit runs without converting (they may be longer than any integer type).
      const std::string_view run_a = std::string_view(a).substr(i, end_a - i);
      const std::string_view run_b = std::string_view(b).substr(j, end_b - j);
      const size_t zeros_a = std::min(run_a.find_first_not_of('0'), run_a.size());
      const size_t zeros_b = std::min(run_b.find_first_not_of('0'), run_b.size());
      const std::string_view value_a = run_a.substr(zeros_a);
      const std::string_view value_b = run_b.substr(zeros_b);
      if (value_a.size() != value_b.size()) return value_a.size() < value_b.size();
      if (value_a != value_b) return value_a < value_b;
      i = end_a;
      j = end_b;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  if ((a.size() - i) != (b.size() - j)) return (a.size() - i) < (b.size() - j);
  return a < b;  // a total order even when numerically equal ("01" vs "1")
}

std::vector<std::string> display_order(const SafetensorsModel& model) {
  std::vector<std::string> names = model.tensor_names();
  std::sort(names.begin(), names.end(), natural_less);
  return names;
}

// Compares the tensors present with llama_tensor_shapes(config).
std::vector<std::string> compare_with_config(const SafetensorsModel& model,
                                             const LlamaConfig& config) {
  std::vector<std::string> warnings;
  const auto shapes = llama_tensor_shapes(config);  // in state_dict order
  std::map<std::string, std::vector<int64_t>> expected(shapes.begin(), shapes.end());
  for (const auto& [name, shape] : shapes) {
    if (!model.contains(name)) {
      warnings.push_back("missing tensor " + quote_name(name) + " " + shape_text(shape));
    } else if (model.info(name).shape != shape) {
      warnings.push_back("tensor " + quote_name(name) + " has shape " +
                         shape_text(model.info(name).shape) + "; the config implies " +
                         shape_text(shape));
    }
  }
  for (const std::string& name : display_order(model)) {
    if (expected.count(name) == 0) {
      warnings.push_back("unexpected tensor " + quote_name(name) + " " +
                         shape_text(model.info(name).shape));
    }
  }
  return warnings;
}

// A tensor name as the table shows it: control characters escaped (a name comes from the
// file and could carry terminal escape sequences).
std::string printable(const std::string& name) {
  const std::string quoted = quote_name(name);
  return quoted.substr(1, quoted.size() - 2);
}

std::string rope_text(const LlamaConfig& config) {
  char buffer[256];
  std::snprintf(buffer, sizeof buffer, "theta %g", config.rope_theta);
  std::string out = buffer;
  if (config.rope_scaling) {
    const RopeScaling& s = *config.rope_scaling;
    std::snprintf(buffer, sizeof buffer,
                  ", %s scaling (factor %g, low_freq_factor %g, high_freq_factor %g, "
                  "original_max_position_embeddings %lld)",
                  s.rope_type.c_str(), s.factor, s.low_freq_factor, s.high_freq_factor,
                  static_cast<long long>(s.original_max_position_embeddings));
    out += buffer;
  } else {
    out += ", no scaling";
  }
  return out;
}

void print_text(const InspectOptions& options, const Report& report,
                const SafetensorsModel& model) {
  const LlamaConfig& c = report.config;
  const auto line = [](const char* key, const std::string& value) {
    std::printf("%-14s %s\n", key, value.c_str());
  };
  line("model", options.model_dir);
  line("architecture",
       report.architecture + " (model_type " +
           std::string(architecture_model_type(c.architecture)) +
           (has_qkv_bias(c) ? ", q/k/v biases" : "") +
           (c.sliding_window ? ", sliding_window " + std::to_string(*c.sliding_window)
                             : std::string()) +
           ")");
  line("hidden_size", std::to_string(c.hidden_size));
  line("layers", std::to_string(c.num_hidden_layers));
  line("heads", std::to_string(c.num_attention_heads) + " (kv heads " +
                    std::to_string(c.num_key_value_heads) + ", head_dim " +
                    std::to_string(c.head_dim) + ")");
  line("intermediate", std::to_string(c.intermediate_size));
  line("vocab", std::to_string(c.vocab_size));
  line("max_positions", std::to_string(c.max_position_embeddings));
  line("rope", rope_text(c));
  line("tied", c.tie_word_embeddings ? "yes (lm_head shares embed_tokens)" : "no");
  line("dtype", c.torch_dtype + " (config)");
  line("parameters", format_count(static_cast<uint64_t>(report.parameters)) + " (config implies " +
                         format_count(static_cast<uint64_t>(report.expected_parameters)) + ")");
  line("size", format_bytes(report.total_bytes) + " (" + format_count(report.total_bytes) +
                   " bytes) in " + std::to_string(report.file_count) +
                   (report.file_count == 1 ? " file" : " files"));
  if (!report.warnings.empty()) {
    std::printf("\nwarnings (%zu):\n", report.warnings.size());
    for (const std::string& warning : report.warnings) std::printf("  %s\n", warning.c_str());
  }
  if (options.no_tensors) return;

  const std::vector<std::string> names = display_order(model);
  size_t name_width = 4;
  size_t shape_width = 5;
  for (const std::string& name : names) {
    name_width = std::max(name_width, printable(name).size());
    shape_width = std::max(shape_width, shape_text(model.info(name).shape).size());
  }
  std::printf("\ntensors (%zu):\n", names.size());
  std::printf("  %-*s  %-5s  %-*s  %s\n", static_cast<int>(name_width), "name", "dtype",
              static_cast<int>(shape_width), "shape", "bytes");
  for (const std::string& name : names) {
    const TensorInfo& info = model.info(name);
    std::printf("  %-*s  %-5s  %-*s  %s\n", static_cast<int>(name_width), printable(name).c_str(),
                std::string(dtype_name(info.dtype)).c_str(), static_cast<int>(shape_width),
                shape_text(info.shape).c_str(), format_count(info.nbytes).c_str());
  }
}

void print_json(const InspectOptions& options, const Report& report,
                const SafetensorsModel& model) {
  const LlamaConfig& c = report.config;
  json out;
  out["model_dir"] = options.model_dir;
  out["architecture"] = report.architecture;
  out["model_type"] = architecture_model_type(report.config.architecture);
  out["config"] = {{"hidden_size", c.hidden_size},
                   {"num_hidden_layers", c.num_hidden_layers},
                   {"num_attention_heads", c.num_attention_heads},
                   {"num_key_value_heads", c.num_key_value_heads},
                   {"head_dim", c.head_dim},
                   {"intermediate_size", c.intermediate_size},
                   {"vocab_size", c.vocab_size},
                   {"max_position_embeddings", c.max_position_embeddings},
                   {"rope_theta", c.rope_theta},
                   {"tie_word_embeddings", c.tie_word_embeddings},
                   {"torch_dtype", c.torch_dtype}};
  out["config"]["rope_scaling"] = llama_config_to_json(c)["rope_scaling"];
  out["parameters"] = report.parameters;
  out["expected_parameters"] = report.expected_parameters;
  out["total_bytes"] = report.total_bytes;
  json files = json::array();
  for (const auto& file : model.files()) files.push_back(file->path().filename().string());
  out["files"] = files;
  out["warnings"] = report.warnings;
  if (!options.no_tensors) {
    json tensors = json::array();
    for (const std::string& name : display_order(model)) {
      const TensorInfo& info = model.info(name);
      tensors.push_back({{"name", name},
                         {"dtype", dtype_name(info.dtype)},
                         {"shape", info.shape},
                         {"bytes", info.nbytes}});
    }
    out["tensors"] = tensors;
  }
  // Tensor names come from the file; replace invalid UTF-8 rather than fail to print.
  std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

void run_inspect(const InspectOptions& options) {
  Report report;
  report.config = load_llama_config(options.model_dir);
  const SafetensorsModel model = SafetensorsModel::open(options.model_dir);
  report.architecture = architecture_name(report.config.architecture);
  for (const std::string& name : model.tensor_names())
    report.parameters += model.info(name).numel();
  report.expected_parameters = llama_parameter_count(report.config);
  report.total_bytes = model.total_bytes();
  report.file_count = model.files().size();
  report.warnings = compare_with_config(model, report.config);
  if (options.json_output) {
    print_json(options, report, model);
  } else {
    print_text(options, report, model);
  }
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto options = std::make_shared<InspectOptions>();
  auto* cmd = app.add_subcommand(
      "inspect", "Show a Hugging Face Llama model folder: config, parameters, tensors");
  cmd->add_option("model_dir", options->model_dir,
                  "Folder with config.json and model.safetensors (or an index + shards), or "
                  "pytorch_model.bin (or its index + shards)")
      ->required();
  cmd->add_flag("--no-tensors", options->no_tensors, "Do not list the tensors");
  cmd->add_flag("--json", options->json_output, "Print one JSON object instead of text");
  cmd->callback([options] { run_inspect(*options); });
}

}  // namespace ll
