// The `llama-lora` command line. Each subcommand lives in its own cmd_<name>.cpp and adds
// itself to the CLI11 app through one add_<name>_command function listed in cli.cpp.
#pragma once

namespace CLI {
class App;
}

namespace ll {

// Parses argv, runs the chosen subcommand, prints any ll::Error as one line on stderr.
// Returns the process exit code.
int run_cli(int argc, char** argv);

void add_inspect_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_chat_template_command(CLI::App& app);
void add_data_stats_command(CLI::App& app);
void add_init_command(CLI::App& app);
void add_make_data_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_consolidate_command(CLI::App& app);
void add_merge_command(CLI::App& app);
void add_export_gguf_command(CLI::App& app);
void add_verify_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_compare_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_report_command(CLI::App& app);

}  // namespace ll
