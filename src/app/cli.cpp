// See cli.h.
#include "app/cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "core/error.h"
#include "core/version.h"

namespace ll {

int run_cli(int argc, char** argv) {
  CLI::App app{
      "llama-lora: LoRA fine-tuning of Llama-family models, natively on CPUs (NVIDIA GPUs: "
      "planned)",
      "llama-lora"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("llama-lora ") + kLlamaLoraVersion);
  add_init_command(app);
  add_inspect_command(app);
  add_tokenize_command(app);
  add_chat_template_command(app);
  add_data_stats_command(app);
  add_make_data_command(app);
  add_train_command(app);
  add_consolidate_command(app);
  add_merge_command(app);
  add_export_gguf_command(app);
  add_verify_command(app);
  add_generate_command(app);
  add_compare_command(app);
  add_eval_command(app);
  add_report_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& done) {  // --help, --version: printed by CLI11, exit 0
    return app.exit(done);
  } catch (const CLI::ParseError& error) {
    // A wrong flag or value: one line, like every other error, naming the command to ask.
    std::string message = error.what();
    for (char& c : message) {
      if (c == '\n') c = ' ';
    }
    std::string command = "llama-lora";
    for (const CLI::App* sub : app.get_subcommands()) command += " " + sub->get_name();
    std::fprintf(stderr, "llama-lora: error: %s (%s --help lists the options)\n", message.c_str(),
                 command.c_str());
    return 1;
  } catch (const Error& error) {
    std::fprintf(stderr, "llama-lora: error: %s\n", error.what());
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "llama-lora: error: %s\n", error.what());
    return 1;
  }
  return 0;
}

}  // namespace ll
