// `llama-lora inspect`: placeholder until its implementation lands in this file.
#include <CLI/CLI.hpp>

#include "app/cli.h"
#include "core/error.h"

namespace ll {

void add_inspect_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "(not built yet)");
  cmd->allow_extras();
  cmd->callback([] { fail("inspect", "not built yet"); });
}

}  // namespace ll
