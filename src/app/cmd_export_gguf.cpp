// `llama-lora export-gguf`: writes a GGUF v3 file for llama.cpp (tools/gguf_export.h).
//   --model DIR -o FILE.gguf                     the model, with its tokenizer
//   --model BASE --adapter DIR -o FILE.gguf      the adapter merged into BASE (tools/merge.h)
//   --adapter DIR --base_config DIR -o FILE.gguf the adapter alone, as a llama.cpp LoRA GGUF
//                                                (llama-cli -m base.gguf --lora FILE.gguf)
// [--outtype f32|f16|bf16|q8_0] (default f16) [--overwrite]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "app/cli.h"
#include "core/error.h"
#include "core/file.h"
#include "core/text.h"
#include "formats/input_checks.h"
#include "tools/gguf_export.h"

namespace ll {
namespace {

constexpr std::string_view kOrigin = "export-gguf";

struct ExportGgufCliOptions {
  std::string model;
  std::string adapter;
  std::string base_config;
  std::string output;
  std::string outtype = "f16";
  bool overwrite = false;
};

// The folder with the base model's config.json for an adapter exported alone: --base_config,
// else adapter_config.json's base_model_name_or_path when that is a local folder with one.
fs::path base_config_dir(const ExportGgufCliOptions& cli) {
  std::error_code ec;
  if (!cli.base_config.empty()) {
    check(fs::is_regular_file(fs::path(cli.base_config) / "config.json", ec), kOrigin,
          "--base_config " + cli.base_config + ": no config.json there");
    return cli.base_config;
  }
  const fs::path adapter_config = fs::path(cli.adapter) / "adapter_config.json";
  if (fs::is_regular_file(adapter_config, ec)) {
    const nlohmann::json json =
        parse_json_text(read_file(adapter_config), kOrigin, adapter_config.string());
    const auto base = json.find("base_model_name_or_path");
    if (base != json.end() && base->is_string() &&
        fs::is_regular_file(fs::path(base->get<std::string>()) / "config.json", ec)) {
      return base->get<std::string>();
    }
  }
  fail(kOrigin, "--adapter " + cli.adapter +
                    " alone needs the base model's config.json: pass --base_config DIR "
                    "(adapter_config.json's base_model_name_or_path is not a local folder "
                    "with one)");
}

void run_export_gguf(const ExportGgufCliOptions& cli) {
  const auto start = std::chrono::steady_clock::now();
  GgufExportOptions options;
  options.outtype = parse_gguf_outtype(cli.outtype);
  options.existing = cli.overwrite ? StagedDir::Existing::Replace : StagedDir::Existing::Refuse;
  check(!cli.model.empty() || !cli.adapter.empty(), kOrigin,
        "give --model DIR, --model BASE --adapter DIR, or --adapter DIR --base_config DIR");
  check(cli.base_config.empty() || cli.model.empty(), kOrigin,
        "--base_config is for --adapter alone; with --model the adapter is merged into it");
  GgufExportResult result;
  std::string what;
  if (cli.adapter.empty()) {
    result = export_model_gguf(cli.model, cli.output, options);
    what = "model " + cli.model;
  } else if (!cli.model.empty()) {
    result = export_merged_gguf(cli.model, cli.adapter, cli.output, options);
    what = cli.adapter + " merged into " + cli.model;
  } else {
    result = export_adapter_gguf(cli.adapter, base_config_dir(cli), cli.output, options);
    what = "LoRA adapter " + cli.adapter;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string kept;
  if (result.kept_f16 > 0) {
    kept = ", " + std::to_string(result.kept_f16) +
           " kept F16 (rows not a multiple of 32, which Q8_0 needs)";
  }
  std::printf("export-gguf: wrote %s (%s): %zu tensors, %s %s%s, %.1f s\n", cli.output.c_str(),
              what.c_str(), result.tensors, format_bytes(result.tensor_bytes).c_str(),
              std::string(gguf_outtype_name(options.outtype)).c_str(), kept.c_str(), seconds);
}

}  // namespace

void add_export_gguf_command(CLI::App& app) {
  auto options = std::make_shared<ExportGgufCliOptions>();
  auto* cmd = app.add_subcommand(
      "export-gguf",
      "Write a GGUF v3 file for llama.cpp: a Llama model with its byte-level BPE tokenizer "
      "(Llama-3 or GPT-2 pre-tokenizer), a model with an adapter merged in, or an adapter "
      "alone as a llama.cpp LoRA GGUF");
  cmd->add_option("--model", options->model,
                  "model folder (config.json, safetensors, tokenizer.json); with --adapter, the "
                  "base the adapter is merged into before export");
  cmd->add_option("--adapter", options->adapter,
                  "PEFT adapter folder; alone (without --model): written as a LoRA GGUF for "
                  "llama-cli --lora, alpha folded so that llama.cpp's alpha/r equals the "
                  "adapter's scale (rsLoRA included)");
  cmd->add_option("--base_config", options->base_config,
                  "with --adapter alone: a folder with the base model's config.json (default: "
                  "adapter_config.json's base_model_name_or_path, when a local folder)");
  cmd->add_option("-o,--output", options->output, "GGUF file to write")->required();
  cmd->add_option("--outtype", options->outtype,
                  "type of the 2-D tensors: f32, f16, bf16 or q8_0 (1-D tensors stay f32; "
                  "q8_0 tensors whose rows are not a multiple of 32 are written f16)")
      ->capture_default_str();
  cmd->add_flag("--overwrite", options->overwrite, "replace the output file if it exists");
  cmd->callback([options] { run_export_gguf(*options); });
}

}  // namespace ll
