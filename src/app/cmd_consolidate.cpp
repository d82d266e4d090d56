// `llama-lora consolidate -i CHECKPOINT_DIR -o ADAPTER_DIR [--overwrite]
// [--merge_into BASE_DIR --merged_output OUT]`: turns a training checkpoint (one adapter shard
// per tensor-parallel rank, Optimum Neuron's adapter_shards/, or an adapter_model.safetensors)
// into one PEFT adapter folder
// (tools/consolidate.h); with --merge_into, also merges it into BASE_DIR (tools/merge.h).
//
// Both outputs are built under temporary names; with --merge_into the adapter folder is
// committed only after the merged model is, so a failure anywhere leaves neither behind.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "app/cli.h"
#include "core/error.h"
#include "core/text.h"
#include "tools/consolidate.h"
#include "tools/merge.h"

namespace ll {
namespace {

struct ConsolidateCliOptions {
  std::string checkpoint;
  std::string output;
  std::string merge_into;
  std::string merged_output;
  std::string tokenizer;
  bool overwrite = false;
};

void run_consolidate(const ConsolidateCliOptions& cli) {
  const StagedDir::Existing existing =
      cli.overwrite ? StagedDir::Existing::Replace : StagedDir::Existing::Refuse;
  check(cli.merge_into.empty() == cli.merged_output.empty(), "consolidate",
        "--merge_into and --merged_output go together (the base model and the merged folder)");
  check(cli.tokenizer.empty() || !cli.merge_into.empty(), "consolidate",
        "--tokenizer applies to the merged model: add --merge_into and --merged_output");
  std::error_code ec;
  check(!fs::equivalent(cli.checkpoint, cli.output, ec), "consolidate",
        cli.output + ": is the checkpoint itself; choose another output folder");
  if (!cli.merged_output.empty()) {
    check(fs::path(cli.merged_output).lexically_normal() != fs::path(cli.output).lexically_normal(),
          "consolidate", "--merged_output and -o name the same folder");
    // Refuse before any work rather than after consolidating.
    check(existing == StagedDir::Existing::Replace || !fs::exists(cli.merged_output, ec), "output",
          cli.merged_output + ": already exists (use --overwrite to replace it)");
  }

  StagedDir staged(cli.output, existing);
  const ConsolidateResult result = consolidate_checkpoint_into(cli.checkpoint, staged.path());
  std::optional<MergeResult> merged;
  if (!cli.merge_into.empty()) {
    MergeOptions options;
    options.existing = existing;
    options.tokenizer = cli.tokenizer;
    merged = merge_adapter(cli.merge_into, staged.path(), cli.merged_output, options);
  }
  staged.commit();

  std::printf("consolidate: wrote %s: %zu LoRA tensors over %lld layers, %s, from %s\n",
              cli.output.c_str(), result.tensors, static_cast<long long>(result.layers),
              format_bytes(result.tensor_bytes).c_str(),
              result.tp_size == 1
                  ? "adapter_model.safetensors (tensor parallel size 1)"
                  : (std::to_string(result.tp_size) + " tensor-parallel shards").c_str());
  if (merged) {
    std::printf("consolidate: merged into %s: %zu projections merged, %zu tensors copied\n",
                cli.merged_output.c_str(), merged->merged_tensors, merged->copied_tensors);
  }
}

}  // namespace

void add_consolidate_command(CLI::App& app) {
  auto options = std::make_shared<ConsolidateCliOptions>();
  auto* cmd = app.add_subcommand(
      "consolidate",
      "Turn a training checkpoint (our tensor-parallel adapter shards, or Optimum Neuron's "
      "adapter_shards/) into one PEFT adapter folder");
  cmd->add_option("-i,--input", options->checkpoint, "checkpoint folder (checkpoint-<step>)")
      ->required();
  cmd->add_option("-o,--output", options->output, "adapter folder to create")->required();
  cmd->add_flag("--overwrite", options->overwrite,
                "replace existing output folders (only once the new ones are complete)");
  cmd->add_option("--merge_into", options->merge_into,
                  "also merge the adapter into this base model folder");
  cmd->add_option("--merged_output", options->merged_output,
                  "model folder to create with --merge_into");
  cmd->add_option("--tokenizer", options->tokenizer,
                  "with --merge_into: folder whose tokenizer files the merged model carries "
                  "instead of the base's (the seed: the Instruct model's tokenizer and chat "
                  "template)");
  cmd->callback([options] { run_consolidate(*options); });
}

}  // namespace ll
