// `llama-lora data-stats`: runs the training data pipeline (read, preset, shuffle/split,
// chat template, tokenize, pack) on a dataset file without training, and prints what `train`
// would get: rows, bad rows, split sizes, tokens, label tokens, packed sequences, rows longer
// than a sequence and the tokens the packing drops. `--json` prints one JSON object instead.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "app/cli.h"
#include "app/held_out_flags.h"
#include "core/error.h"
#include "core/text.h"
#include "data/dataset.h"

namespace ll {

namespace {

struct DataStatsOptions {
  std::string model;
  HeldOutFlags rows;  // the file and its split, as train, eval and compare read them
  uint32_t max_seq_length = 1024;
  bool completion_only_loss = false;
  bool json = false;
};

void print_row(const char* name, uint64_t train, uint64_t eval) {
  std::printf("  %-28s %14s %14s\n", name, format_count(train).c_str(), format_count(eval).c_str());
}

void print_stats(const DataStats& s, const Tokenizer& tokenizer, double seconds) {
  std::printf("data-stats: %s\n", s.path.c_str());
  std::printf("  preset %s, seed %s, max_seq_length %u, loss on %s, concat token %d (%s)\n",
              std::string(preset_name(s.preset)).c_str(), format_count(s.split.seed).c_str(),
              s.max_seq_length,
              s.loss_mask == LossMask::AllTokens ? "all tokens" : "assistant tokens only",
              s.concat_token, tokenizer.id_to_token(s.concat_token).c_str());
  std::printf("  rows %s (%s bad, skipped; %s in neither split)\n", format_count(s.rows).c_str(),
              format_count(s.bad_rows).c_str(), format_count(s.unused_rows).c_str());
  for (const std::string& problem : s.bad_row_problems) {
    std::printf("    skipped %s\n", problem.c_str());
  }
  if (s.bad_rows > s.bad_row_problems.size()) {
    std::printf("    ... and %s more\n",
                format_count(s.bad_rows - s.bad_row_problems.size()).c_str());
  }
  std::printf("  %-28s %14s %14s\n", "", "train", "eval");
  print_row("rows", s.train.rows, s.eval.rows);
  print_row("tokens", s.train.tokens, s.eval.tokens);
  print_row("label tokens", s.train.label_tokens, s.eval.label_tokens);
  print_row(s.layout == SequenceLayout::Packed ? "packed sequences" : "padded sequences",
            s.train.sequences, s.eval.sequences);
  const std::string longer = "rows longer than " + std::to_string(s.max_seq_length);
  print_row(longer.c_str(), s.train.rows_longer_than_sequence, s.eval.rows_longer_than_sequence);
  print_row(s.layout == SequenceLayout::Packed ? "dropped tail tokens" : "truncated tokens",
            s.train.dropped_tokens, s.eval.dropped_tokens);
  std::printf("  took %.2f s\n", seconds);
}

void run_data_stats(const DataStatsOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  const Tokenizer tokenizer = Tokenizer::load(o.model);
  const ChatTemplate chat_template = ChatTemplate::load(o.model);

  DataOptions options = dataset_selection(o.rows).data_options();
  options.max_seq_length = o.max_seq_length;
  options.loss_mask = o.completion_only_loss ? LossMask::AssistantOnly : LossMask::AllTokens;

  const PreparedData data = prepare_data(o.rows.data, tokenizer, chat_template, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.json) {
    nlohmann::json json = data_stats_to_json(data.stats);
    json["seconds"] = seconds;
    std::printf("%s\n", json.dump().c_str());
  } else {
    print_stats(data.stats, tokenizer, seconds);
  }
}

}  // namespace

void add_data_stats_command(CLI::App& app) {
  auto options = std::make_shared<DataStatsOptions>();
  auto* cmd = app.add_subcommand(
      "data-stats", "Run the data pipeline on a dataset file and print rows, tokens and sequences");
  cmd->add_option("--model", options->model,
                  "Model or tokenizer folder (tokenizer.json + tokenizer_config.json)")
      ->required();
  cmd->add_option("--data", options->rows.data, "Dataset file: JSON lines or a JSON array")
      ->required();
  cmd->add_option("--preset", options->rows.preset, "Record format: sql, messages, alpaca or text")
      ->check(CLI::IsMember({"sql", "messages", "alpaca", "text"}))
      ->capture_default_str();
  cmd->add_option("--max_seq_length", options->max_seq_length, "Tokens per packed sequence")
      ->check(CLI::Range(1u, 1u << 24))
      ->capture_default_str();
  cmd->add_flag("--skip_bad_rows", options->rows.skip_bad_rows,
                "Count and skip rows that are not valid JSON or lack a field, instead of failing");
  cmd->add_flag("--completion_only_loss", options->completion_only_loss,
                "Train on the assistant's tokens only (count those as label tokens)");
  cmd->add_flag("--json", options->json, "Print one JSON object");
  cmd->add_option("--seed", options->rows.seed, "Shuffle seed (default 23)");
  cmd->add_option("--train_rows", options->rows.train_rows,
                  "Rows for training (sql default 50000; others: all but the eval rows)");
  cmd->add_option("--eval_rows", options->rows.eval_rows,
                  "Rows held out for evaluation (sql default 500; others 0)");
  cmd->callback([options] { run_data_stats(*options); });
}

}  // namespace ll
