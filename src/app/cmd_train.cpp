// `llama-lora train --model DIR --data FILE [flags]`: LoRA fine-tuning with Hugging Face
// TrainingArguments flag names (train/training_args.h), the loop of train/trainer.h.
//
// Everything that can be checked is checked before anything is written: the settings, the
// output folder (writable; no earlier run in it unless --overwrite_output_dir or
// --resume_from_checkpoint), the model config against --max_seq_length, the checkpoint to
// resume from (every file read), then the weights, tokenizer and data. SIGINT / SIGTERM ask
// the run to stop at the next step boundary, where it saves a checkpoint and exits 0; a
// second signal ends the process at once (the default action). Finished or stopped, rank 0
// then writes OUTPUT_DIR/report.html (tools/run_report.h) from the run's files.
//
// Launched by mpirun (`mpirun -np 4 llama-lora train --tensor_parallel_size 2 ...`) every
// process runs this with the same flags: rank 0 checks the output folder, prints and writes
// metrics; every rank loads the model and data itself (the data pipeline is deterministic).
// An error on any rank is printed with its rank and ends the whole run (MPI_Abort), so no
// rank waits for ever on a dead peer.
#include <omp.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "app/cli.h"
#include "backend/backend.h"
#include "core/error.h"
#include "core/text.h"
#include "data/dataset.h"
#include "formats/llama_config.h"
#include "model/llama_weights.h"
#include "parallel/communicator.h"
#include "tools/run_report.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train/training_args.h"

namespace ll {
namespace {

constexpr const char* kOrigin = "train";

volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int signal_number) {
  g_stop_signal = signal_number;
}

// Installs the stop handlers for its lifetime (SA_RESETHAND: the second signal is fatal).
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

DataOptions data_options_from_args(const TrainingArgs& args) {
  DataOptions options =
      DatasetSelection::from_flags(args.preset, args.skip_bad_rows, args.data_seed,
                                   static_cast<uint64_t>(args.train_rows),
                                   static_cast<uint64_t>(args.eval_rows))
          .data_options();
  options.max_seq_length = static_cast<uint32_t>(args.max_seq_length);
  options.loss_mask = args.completion_only_loss ? LossMask::AssistantOnly : LossMask::AllTokens;
  options.layout = args.packing ? SequenceLayout::Packed : SequenceLayout::Padded;
  return options;
}

void train_rank(const TrainingArgs& args, ParallelGroups& groups) {
  const bool main_rank = groups.world->rank() == 0;
  validate_training_args(args);
  check(!args.model.empty(), kOrigin, "--model is required");
  check(!args.data.empty(), kOrigin, "--data is required");
  check(args.max_seq_length >= 1, kOrigin, "--max_seq_length must be at least 1");
  lora_config_from_args(args);
  if (main_rank) check_output_dir(args);

  const LlamaConfig config = load_llama_config(args.model);
  check(args.max_seq_length <= config.max_position_embeddings, kOrigin,
        "--max_seq_length " + std::to_string(args.max_seq_length) +
            " is above the model's max_position_embeddings (" +
            std::to_string(config.max_position_embeddings) + ", " + args.model + "/config.json)");
  check_attention_window(config, args.max_seq_length,
                         "--max_seq_length " + std::to_string(args.max_seq_length));
  TrainerOptions options;
  if (!args.resume_from_checkpoint.empty()) {
    options.resume =
        load_checkpoint(resolve_resume_checkpoint(args.resume_from_checkpoint, args.output_dir),
                        config, groups.tp_rank(), groups.tp_size());
  }

  const LlamaWeights weights = load_llama_weights(args.model);
  const std::string tokenizer_dir = args.tokenizer.empty() ? args.model : args.tokenizer;
  const Tokenizer tokenizer = Tokenizer::load(tokenizer_dir);
  const ChatTemplate chat_template = ChatTemplate::load(tokenizer_dir);
  const PreparedData data =
      prepare_data(args.data, tokenizer, chat_template, data_options_from_args(args));
  const SplitStats& train = data.stats.train;
  check(data.train.size() > 0, kOrigin,
        args.data + ": no usable rows: the train split has " + format_count(train.rows) +
            " good rows (" + format_count(data.stats.bad_rows) + " bad), " +
            format_count(train.tokens) + " tokens, not enough for one sequence of " +
            std::to_string(args.max_seq_length) + " tokens");

  const StopSignals signals;
  options.progress = main_rank ? default_progress_style() : ProgressStyle::Quiet;
  options.parallel = &groups;
  options.stop_requested = [] { return g_stop_signal != 0; };
  options.base_model = args.model;
  // --bf16 True: bf16 GEMMs through oneDNN where this build and CPU have them, else the
  // fp32 path, said once (a flag is never silently ignored).
  Precision precision = Precision::Fp32;
  if (args.bf16) {
    if (cpu_bf16_available()) {
      precision = Precision::Bf16;
    } else if (main_rank) {
      std::fprintf(
          stderr, "[train] --bf16 True: bf16 compute is unavailable here (%s); computing in fp32\n",
          cpu_bf16_description().c_str());
    }
  }
  options.backend = &cpu_backend(precision);
  Trainer trainer(args, weights, data.train, data.eval, std::move(options));
  const TrainResult result = trainer.train();
  if (!main_rank) return;
  // The run is done and saved: a report that cannot be written is said, not fatal.
  std::string report = (fs::path(args.output_dir) / "report.html").string();
  try {
    write_run_report({fs::path(args.output_dir), {}, std::nullopt}, report);
  } catch (const Error& error) {
    std::fprintf(stderr, "[train] no report.html: %s\n", error.what());
    report = "none";
  }

  const std::string checkpoint =
      result.last_checkpoint ? result.last_checkpoint->string() : std::string("none");
  if (result.outcome == TrainResult::Outcome::Stopped) {
    // With --save_strategy no (or a stop before the first step) there is nothing to resume.
    const char* resume =
        result.last_checkpoint ? " (continue with --resume_from_checkpoint latest)" : "";
    std::printf(
        "train: stopped by %s at step %lld of %lld; checkpoint: %s%s; report: %s\n",
        g_stop_signal == SIGINT ? "SIGINT" : "SIGTERM", static_cast<long long>(result.global_step),
        static_cast<long long>(result.total_steps), checkpoint.c_str(), resume, report.c_str());
    return;
  }
  std::string eval;
  if (!result.evals.empty()) {
    char text[96];
    std::snprintf(text, sizeof text, ", eval_loss %.4f -> %.4f", result.evals.front().second,
                  result.evals.back().second);
    eval = text;
  }
  std::printf(
      "train: %lld steps, train_loss %.4f%s, %.1f s (steps: %s tokens/s); adapter: %s, "
      "last checkpoint: %s; report: %s\n",
      static_cast<long long>(result.global_step), result.train_loss, eval.c_str(), result.seconds,
      format_count(static_cast<uint64_t>(result.tokens_per_s)).c_str(), args.output_dir.c_str(),
      checkpoint.c_str(), report.c_str());
}

}  // namespace

void run_train(const TrainingArgs& args) {
  const std::unique_ptr<Communicator> world = world_communicator();
  if (world->size() == 1) {
    ParallelGroups groups =
        make_parallel_groups(*world, static_cast<int>(args.tensor_parallel_size));
    train_rank(args, groups);
    return;
  }
  set_collective_timeout(args.ddp_timeout);
  // CPU ranks on one machine share its cores: unless OMP_NUM_THREADS says otherwise each
  // takes its share (more OpenMP threads than cores spin against each other, 10x slower).
  if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    omp_set_num_threads(std::max(1, cores / processes_on_this_machine()));
  }
  try {
    ParallelGroups groups =
        make_parallel_groups(*world, static_cast<int>(args.tensor_parallel_size));
    train_rank(args, groups);
    world->barrier();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "llama-lora: error: rank %d of %d: %s\n", world->rank(), world->size(),
                 error.what());
    std::fflush(stderr);
    world->abort(1);
  }
}

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainingArgs>();
  auto* cmd = app.add_subcommand(
      "train",
      "LoRA fine-tuning (Hugging Face TrainingArguments flag names; --recipe sql is "
      "the seed's setup)");
  add_training_flags(*cmd, *args);
  cmd->callback([args] { run_train(*args); });
}

}  // namespace ll
