// `llama-lora data-stats`: placeholder until its implementation lands in this file.
#include <CLI/CLI.hpp>

#include "app/cli.h"
#include "core/error.h"

namespace ll {

void add_data_stats_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("data-stats", "(not built yet)");
  cmd->allow_extras();
  cmd->callback([] { fail("data-stats", "not built yet"); });
}

}  // namespace ll
