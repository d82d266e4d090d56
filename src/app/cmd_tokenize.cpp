// `llama-lora tokenize`: placeholder until its implementation lands in this file.
#include <CLI/CLI.hpp>

#include "app/cli.h"
#include "core/error.h"

namespace ll {

void add_tokenize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "(not built yet)");
  cmd->allow_extras();
  cmd->callback([] { fail("tokenize", "not built yet"); });
}

}  // namespace ll
