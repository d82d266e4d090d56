// `llama-lora init`: placeholder until its implementation lands in this file.
#include <CLI/CLI.hpp>

#include "app/cli.h"
#include "core/error.h"

namespace ll {

void add_init_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("init", "(not built yet)");
  cmd->allow_extras();
  cmd->callback([] { fail("init", "not built yet"); });
}

}  // namespace ll
