// `llama-lora verify --base DIR --adapter DIR --merged DIR [--tolerance X]`: is the merged
// folder the same model as base + adapter (tools/verify.h)? Prints the logit differences and
// exits non-zero above the tolerance.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "app/cli.h"
#include "core/error.h"
#include "tools/verify.h"

namespace ll {
namespace {

struct VerifyCliOptions {
  std::string base;
  std::string adapter;
  std::string merged;
  std::optional<double> tolerance;
};

void run_verify(const VerifyCliOptions& cli) {
  VerifyOptions options;
  options.tolerance = cli.tolerance;
  const Verification v = verify_merged_model(cli.base, cli.adapter, cli.merged, options);
  std::printf("verify: %s\n", verification_summary(v).c_str());
  check(v.passed(), "verify",
        cli.merged + ": the merged model is not base + adapter (relative logit difference " +
            std::to_string(v.relative) + " > tolerance " + std::to_string(v.tolerance) + ")");
}

}  // namespace

void add_verify_command(CLI::App& app) {
  auto options = std::make_shared<VerifyCliOptions>();
  auto* cmd = app.add_subcommand(
      "verify", "Check that a merged model folder gives the logits of base + adapter");
  cmd->add_option("--base", options->base, "base model folder (config.json + safetensors)")
      ->required();
  cmd->add_option("--adapter", options->adapter,
                  "PEFT adapter folder (adapter_config.json + adapter_model.safetensors)")
      ->required();
  cmd->add_option("--merged", options->merged, "merged model folder (from `merge`)")->required();
  cmd->add_option("--tolerance", options->tolerance,
                  "largest relative logit difference, max |merged - (base + adapter)| / max "
                  "|logit| (default: 1e-4 for fp32, 5e-3 for f16, 2e-2 for bf16 merged weights)");
  cmd->callback([options] { run_verify(*options); });
}

}  // namespace ll
