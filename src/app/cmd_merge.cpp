// `llama-lora merge --model BASE --adapter ADAPTER -o OUT [--overwrite] [--verify]
// [--tolerance X] [--max_shard_size 5GB]`: folds a PEFT LoRA adapter into its base model and writes
// a plain Hugging Face model folder (tools/merge.h), like peft's merge_and_unload +
// save_pretrained.
// --verify runs `verify` (tools/verify.h) on the new folder before it appears: above the
// tolerance nothing is written and the exit status is non-zero.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "app/cli.h"
#include "core/text.h"
#include "tools/merge.h"

namespace ll {
namespace {

struct MergeCliOptions {
  std::string model;
  std::string adapter;
  std::string output;
  std::string max_shard_size = "5GB";
  bool overwrite = false;
  bool verify = false;
  std::optional<double> tolerance;
  std::string tokenizer;
};

void run_merge(const MergeCliOptions& cli) {
  const auto start = std::chrono::steady_clock::now();
  MergeOptions options;
  options.max_shard_bytes = parse_max_shard_size(cli.max_shard_size, "--max_shard_size");
  options.existing = cli.overwrite ? StagedDir::Existing::Replace : StagedDir::Existing::Refuse;
  options.verify = cli.verify ? MergeVerify::On : MergeVerify::Off;
  options.verify_options.tolerance = cli.tolerance;
  options.tokenizer = cli.tokenizer;
  const MergeResult result = merge_adapter(cli.model, cli.adapter, cli.output, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const size_t shards =
      result.weight_files.size() == 1 ? 1 : result.weight_files.size() - 1;  // - the index
  std::printf(
      "merge: wrote %s: %zu projections merged, %zu tensors copied, %s in %zu weight "
      "file%s, %.1f s\n",
      cli.output.c_str(), result.merged_tensors, result.copied_tensors,
      format_bytes(result.tensor_bytes).c_str(), shards, shards == 1 ? "" : "s", seconds);
  if (result.verification) {
    std::printf("merge: verify: %s\n", verification_summary(*result.verification).c_str());
  }
}

}  // namespace

void add_merge_command(CLI::App& app) {
  auto options = std::make_shared<MergeCliOptions>();
  auto* cmd = app.add_subcommand(
      "merge", "Merge a LoRA adapter into its base model and write a Hugging Face model folder");
  cmd->add_option("--model", options->model,
                  "base model folder (config.json + safetensors or pytorch_model.bin)")
      ->required();
  cmd->add_option("--adapter", options->adapter,
                  "PEFT adapter folder (adapter_config.json + adapter_model.safetensors), or a "
                  "training checkpoint of tensor-parallel shards (ours or Optimum Neuron's "
                  "adapter_shards/), consolidated first")
      ->required();
  cmd->add_option("-o,--output", options->output, "model folder to create")->required();
  cmd->add_option("--max_shard_size", options->max_shard_size,
                  "largest weight file, as save_pretrained's max_shard_size (5GB, 500MB, 2GiB)")
      ->capture_default_str();
  cmd->add_flag("--overwrite", options->overwrite,
                "replace the output folder if it exists (only once the new one is complete)");
  cmd->add_option(
      "--tokenizer", options->tokenizer,
      "folder whose tokenizer files the merged model carries instead of the base's (the seed: "
      "the Instruct model's tokenizer and chat template)");
  cmd->add_flag("--verify", options->verify,
                "compare the merged model's logits with base + adapter on fixed prompts (as "
                "`verify`) and write nothing when they differ by more than the tolerance");
  cmd->add_option("--tolerance", options->tolerance,
                  "--verify's largest relative logit difference (default: 1e-4 for fp32, 5e-3 "
                  "for f16, 2e-2 for bf16 merged weights)");
  cmd->callback([options] { run_merge(*options); });
}

}  // namespace ll
