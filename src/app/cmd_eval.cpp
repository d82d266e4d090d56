// `llama-lora eval`: how good is a model (optionally with a LoRA adapter) on the held-out rows
// of a dataset, split exactly as `train` splits it.
//   - eval loss and perplexity: mean cross-entropy per label token over the packed evaluation
//     split (the number `train` logs as eval_loss), no dropout;
//   - with --preset sql, on the first --limit held-out rows: greedy answers (stopped and cut at
//     the model's stop ids and --stop strings, tools/stopping.h) scored by exact
//     match (whitespace/case-normalised), valid SQL (prepares read-only against the schema the
//     row's context creates, in SQLite) and execution match (same rows as the gold query on
//     generated data); see tools/sql_eval.h.
// Prints a table, or one JSON object with --json.
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/cli.h"
#include "app/held_out_flags.h"
#include "app/stop_flags.h"
#include "core/error.h"
#include "data/dataset.h"
#include "model/llama_model.h"
#include "tools/chat_generation.h"
#include "tools/sql_eval.h"
#include "train/batches.h"

namespace ll {

namespace {

constexpr const char* kOrigin = "eval";

struct EvalOptions {
  std::string model;
  std::string adapter;
  std::string tokenizer;  // empty: the model's own
  HeldOutFlags held_out;
  int64_t limit = 100;  // rows generated and scored (sql); 0 = every held-out row
  int64_t max_new_tokens = 128;
  std::vector<std::string> stop;
  int64_t batch_size = 8;
  uint32_t max_seq_length = 1024;
  bool completion_only_loss = false;
  bool json = false;
};

struct LossResult {
  double loss = 0;
  int64_t label_tokens = 0;
  uint64_t sequences = 0;
};

LossResult eval_loss(ChatModel& model, const EvalOptions& o) {
  DataOptions data = dataset_selection(o.held_out).data_options();
  data.max_seq_length = o.max_seq_length;
  data.loss_mask = o.completion_only_loss ? LossMask::AssistantOnly : LossMask::AllTokens;
  const PreparedData prepared =
      prepare_data(o.held_out.data, model.tokenizer, model.chat_template, data);
  check(prepared.eval.size() > 0, kOrigin,
        o.held_out.data + ": the evaluation split packs into no sequence of " +
            std::to_string(o.max_seq_length) + " tokens (too few held-out tokens)");
  check(o.max_seq_length <= model.weights.config.max_position_embeddings, kOrigin,
        "--max_seq_length " + std::to_string(o.max_seq_length) +
            " is above the model's max_position_embeddings");
  check_attention_window(model.weights.config, o.max_seq_length,
                         "--max_seq_length " + std::to_string(o.max_seq_length));
  LlamaLoraModel forward(model.weights, model.adapter ? &*model.adapter : nullptr, {});
  const LossTotals totals =
      sum_sequence_losses(forward, prepared.eval, static_cast<uint64_t>(o.batch_size));
  check(totals.label_tokens > 0, kOrigin, "the evaluation split has no label tokens");
  return {totals.sum / static_cast<double>(totals.label_tokens), totals.label_tokens,
          prepared.eval.size()};
}

void run_eval(const EvalOptions& o) {
  check(o.limit >= 0, kOrigin, "--limit must be >= 0");
  check(o.max_new_tokens >= 1, kOrigin, "--max_new_tokens must be >= 1");
  check(o.batch_size >= 1, kOrigin, "--batch_size must be >= 1");
  const StopStrings stop_strings(o.stop);
  const auto start = std::chrono::steady_clock::now();
  // Data first: a bad file fails before the weights load.
  const std::vector<HeldOutExample> held_out = read_held_out(o.held_out);
  check(!held_out.empty(), kOrigin,
        o.held_out.data + ": the evaluation split is empty (give --eval_rows)");
  auto model = load_chat_model(o.model, o.adapter, o.tokenizer);

  const LossResult loss = eval_loss(*model, o);
  nlohmann::json out = {
      {"model", o.model},
      {"adapter", o.adapter.empty() ? nlohmann::json() : nlohmann::json(o.adapter)},
      {"data", o.held_out.data},
      {"preset", o.held_out.preset},
      {"eval_rows", held_out.size()},
      {"eval_loss", loss.loss},
      {"perplexity", std::exp(loss.loss)},
      {"label_tokens", loss.label_tokens},
      {"sequences", loss.sequences}};

  if (o.held_out.preset == "sql") {
    const size_t rows =
        o.limit == 0 ? held_out.size() : std::min(held_out.size(), static_cast<size_t>(o.limit));
    std::vector<std::vector<ChatMessage>> prompts;
    for (size_t i = 0; i < rows; ++i) prompts.push_back(held_out[i].prompt);
    const bool terminal = !o.json && isatty(fileno(stderr));
    const AnswerOptions answer{o.max_new_tokens, static_cast<size_t>(o.batch_size), stop_strings};
    const auto answers = generate_answers(*model, prompts, answer, [&](size_t done, size_t total) {
      if (terminal) std::fprintf(stderr, "\r[eval] generated %zu/%zu", done, total);
    });
    if (terminal) std::fprintf(stderr, "\n");
    SqlEvalSummary summary;
    for (size_t i = 0; i < rows; ++i) {
      const std::string context = held_out[i].record.value("context", std::string());
      summary.add(evaluate_sql_row(answers[i], held_out[i].reference, context, held_out[i].index));
    }
    out["generated_rows"] = rows;
    out["sql"] = sql_eval_summary_json(summary);
    if (!o.json) {
      std::printf("eval: %s on %s (preset sql)\n", model->label.c_str(), o.held_out.data.c_str());
      std::printf("  eval loss %.4f, perplexity %.2f over %lld label tokens (%zu held-out rows)\n",
                  loss.loss, std::exp(loss.loss), static_cast<long long>(loss.label_tokens),
                  held_out.size());
      std::printf(
          "  generated answers for the first %zu held-out rows (greedy, at most %lld "
          "tokens)\n%s",
          rows, static_cast<long long>(o.max_new_tokens), format_sql_eval_summary(summary).c_str());
    }
  } else if (!o.json) {
    std::printf("eval: %s on %s (preset %s)\n", model->label.c_str(), o.held_out.data.c_str(),
                o.held_out.preset.c_str());
    std::printf("  eval loss %.4f, perplexity %.2f over %lld label tokens (%zu held-out rows)\n",
                loss.loss, std::exp(loss.loss), static_cast<long long>(loss.label_tokens),
                held_out.size());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out["seconds"] = seconds;
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("  took %.1f s\n", seconds);
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  auto* cmd = app.add_subcommand(
      "eval",
      "Eval loss and perplexity on held-out rows; for sql also exact/valid/execution match");
  cmd->add_option("--model", o->model, "Model folder")->required();
  cmd->add_option("--adapter", o->adapter, "PEFT adapter folder applied to --model");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer folder (tokenizer.json + chat template); default: the model's own");
  add_held_out_flags(*cmd, o->held_out);
  cmd->add_option("--limit", o->limit, "Held-out rows to generate and score (0: all)")
      ->capture_default_str();
  cmd->add_option("--max_new_tokens", o->max_new_tokens, "Most new tokens per answer")
      ->capture_default_str();
  add_stop_flag(*cmd, o->stop);
  cmd->add_option("--batch_size", o->batch_size, "Sequences per forward / generation batch")
      ->capture_default_str();
  cmd->add_option("--max_seq_length", o->max_seq_length, "Tokens per packed sequence (loss)")
      ->check(CLI::Range(1u, 1u << 24))
      ->capture_default_str();
  cmd->add_flag("--completion_only_loss", o->completion_only_loss,
                "Loss on the assistant's tokens only");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o] { run_eval(*o); });
}

}  // namespace ll
