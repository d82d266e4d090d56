// `llama-lora make-data`: writes a synthetic dataset so that demos and tests need no
// download. Today one kind: sql (sql-create-context style rows, see data/synthetic_sql.h).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "app/cli.h"
#include "core/error.h"
#include "data/synthetic_sql.h"

namespace ll {

void add_make_data_command(CLI::App& app) {
  struct Options {
    std::string kind = "sql";
    size_t rows = 4000;
    uint64_t seed = 0;
    std::string output;
  };
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "make-data", "Write a synthetic dataset (JSON lines) of sql-create-context style rows");
  cmd->add_option("--preset", options->kind, "Kind of data")
      ->check(CLI::IsMember({"sql"}))
      ->capture_default_str();
  cmd->add_option("--rows", options->rows, "Number of rows")->capture_default_str();
  cmd->add_option("--seed", options->seed, "Random seed")->capture_default_str();
  cmd->add_option("-o,--output", options->output, "Output .jsonl file")->required();
  cmd->callback([options] {
    if (options->rows == 0) fail("make-data", "--rows must be at least 1");
    write_sql_rows_jsonl(options->output, generate_sql_rows(options->rows, options->seed));
    std::printf("wrote %zu sql rows to %s\n", options->rows, options->output.c_str());
  });
}

}  // namespace ll
