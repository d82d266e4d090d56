// The training loop of `llama-lora train` (DESIGN.md "Data flow of train"), with Hugging Face
// Trainer's semantics where it has them:
//
//   schedule   total steps = max_steps if > 0, else ceil(num_train_epochs · steps_per_epoch);
//              steps_per_epoch = ceil(sequences / (batch · accumulation)), or floor with
//              --dataloader_drop_last (then every step is full). With accumulation 1 this is
//              HF's count exactly; with more, HF floors the micro-batch count per epoch and
//              folds a leftover into the next epoch, while we give the last step of an epoch
//              its leftover micro-batches (a short last step, never data from two epochs).
//              Warm-up from warmup_steps_for(); the rate of step s (0-based) is
//              scheduled_lr(s), and metrics log the rate of the NEXT step, as HF does.
//   data       epoch e visits the packed training sequences in epoch_order(e) (batches.h),
//              per_device_train_batch_size rows per micro-batch, gradient_accumulation_steps
//              micro-batches per optimizer step.
//   loss       sum over the step's micro-batches of forward_backward(batch, 1 / label tokens of
//              the whole step): the mean over every label token of the step, not a mean of
//              micro-batch means. Clip, then AdamW.
//   dropout    LoRA dropout masks of micro-batch m of step s come from
//              micro_batch_dropout_seed(seed, s, m); evaluation runs without dropout.
//   precision  the base weights stay in their stored dtype (bf16 for Llama) and every op
//              computes in fp32 ("bf16 weights, fp32 compute"); --bf16 does not change that
//              yet: a bf16 compute mode comes with the speed work.
//   logging    a metrics line at the logging_strategy's steps (train/run_policy.h: every
//              logging_steps by default; loss = mean of the steps since the last line);
//              evaluation per eval_strategy: before the first step, every eval_steps (or at
//              each epoch's end) and at the end; none with no. Each line goes to metrics.jsonl
//              and, with --report_to tensorboard, as scalars to an event file in
//              --logging_dir (train/tensorboard.h).
//   saving     checkpoint-<step> per save_strategy: every save_steps (or at each epoch's end)
//              and at the end (train/checkpoint.h), none with no; the oldest removed beyond
//              save_total_limit; the final adapter always also in output_dir.
//   resume     from a checkpoint the run continues exactly: same data order, dropout masks,
//              optimizer state and logging sums, so later losses are bit-identical (fp32,
//              same machine and thread count) to an uninterrupted run's.
//   parallel   (TrainerOptions::parallel) world = tp x dp ranks. A step takes
//              batch x accumulation x dp sequences; micro-batch m of dp rank d holds the
//              step's rows [(m·dp + d)·batch, +batch). Each tp rank holds its share of the
//              model and adapter (model/tensor_parallel.h); after the backward the gradients of
//              replicated LoRA tensors are summed over tp, then every gradient over dp, and the
//              loss is divided by the label tokens of the whole step on every rank, so losses
//              do not depend on the topology (up to float summation order). Stop requests are
//              agreed at every step boundary (any rank's request stops all).
//   stop       stop_requested() is polled at every step boundary: the run saves a
//              checkpoint (not with save_strategy no) and returns Outcome::Stopped. A non-finite
//              loss or gradient norm throws "[train] step N: loss is nan; last good checkpoint:
//              PATH" (or "none") before the bad update, and nothing of the bad state is saved.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/profiling_backend.h"
#include "data/packing.h"
#include "model/llama_model.h"
#include "train/checkpoint.h"
#include "train/lora_args.h"
#include "train/lr_schedule.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/run_log.h"
#include "train/step_plan.h"
#include "train/step_profile.h"
#include "train/tensorboard.h"
#include "train/training_args.h"

namespace ll {

// "bf16 weights, fp32 compute" (or f16 / "fp32") for the model's stored dtype.
std::string compute_precision(const LlamaWeights& base);

struct TrainerOptions {
  ProgressStyle progress = ProgressStyle::Quiet;
  std::function<bool()> stop_requested;  // may be empty
  std::string base_model;                // base_model_name_or_path of the adapters
  // A checkpoint already loaded (the CLI loads it before the data, to fail early); else the
  // trainer loads args.resume_from_checkpoint itself.
  std::optional<LoadedCheckpoint> resume;
  // The run's tensor- and data-parallel groups; null: one process. Every rank builds its own
  // Trainer with the same settings and data; only world rank 0 writes metrics and the json
  // files, and its progress style should be the only one that is not Quiet.
  ParallelGroups* parallel = nullptr;
  // Where the model's ops and the optimizer run; null: the CPU backend.
  Backend* backend = nullptr;
};

struct StepRecord {
  int64_t step = 0;  // 1-based, as logged
  double loss = 0;
  double grad_norm = 0;
  double learning_rate = 0;  // the rate this step used
};

struct TrainResult {
  enum class Outcome { Finished, Stopped };
  Outcome outcome = Outcome::Finished;
  int64_t global_step = 0;
  int64_t total_steps = 0;
  std::vector<StepRecord> steps;                  // the steps this run took
  std::vector<std::pair<int64_t, double>> evals;  // (step, eval_loss)
  std::optional<fs::path> last_checkpoint;
  double train_loss = 0;       // mean loss over every step so far (resumed ones included)
  double seconds = 0;          // this run's wall time
  int64_t trained_tokens = 0;  // this run's
  double tokens_per_s = 0;     // trained tokens per second of optimizer steps (no eval/save)
};

class Trainer {
 public:
  // Checks the settings against the data and model, builds (or loads) the adapter and
  // optimizer; writes nothing. The weights and sequences must outlive the trainer.
  Trainer(const TrainingArgs& args, const LlamaWeights& base, const TokenSequences& train,
          const TokenSequences& eval, TrainerOptions options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Runs until total steps or a stop request, writing to args.output_dir.
  TrainResult train();

  // Mean loss per label token over the eval split (no dropout); nullopt when it is empty.
  std::optional<double> evaluate();

  const LoraAdapter& adapter() const { return adapter_; }  // this rank's share
  // The whole adapter's parameters (every tensor-parallel rank's share counted once).
  int64_t lora_parameter_count() const;
  // Where the model runs: options.backend, or the fp32 CPU backend.
  Backend& backend() const { return options_.backend ? *options_.backend : cpu_backend(); }
  const TrainerState& state() const { return state_; }

 private:
  StepRecord run_step();
  void reduce_gradients();
  bool any_rank(bool value);
  int tp_rank() const { return options_.parallel ? options_.parallel->tp_rank() : 0; }
  int tp_size() const { return options_.parallel ? options_.parallel->tp_size() : 1; }
  int dp_rank() const { return options_.parallel ? options_.parallel->dp_rank() : 0; }
  int dp_size() const { return options_.parallel ? options_.parallel->dp_size() : 1; }
  bool main_rank() const { return !options_.parallel || options_.parallel->world->rank() == 0; }
  const LlamaWeights& weights() const { return local_weights_ ? *local_weights_ : base_; }
  void write_final_adapter();
  void log_metrics(nlohmann::json line);
  void open_tensorboard(bool resumed);
  void run_eval(TrainResult& result);
  fs::path save(TrainResult& result);
  [[noreturn]] void fail_not_finite(int64_t step, const char* what, double value) const;

  TrainingArgs args_;
  const LlamaWeights& base_;
  const TokenSequences& train_;
  const TokenSequences& eval_;
  TrainerOptions options_;
  // --profile: wraps the backend the model runs on (options_.backend points at it); declared
  // before everything that holds the backend's memory.
  std::unique_ptr<ProfilingBackend> profiler_;
  OpProfile profile_sum_;  // over the steady-state steps
  ProfiledSteps profiled_;
  int64_t steps_this_run_ = 0;
  StepPlan plan_;  // what each step trains on
  LrSchedule schedule_;
  int64_t warmup_steps_ = 0;
  std::optional<LlamaWeights> local_weights_;  // this rank's share (tensor parallel)
  LoraAdapter adapter_;                        // this rank's share (tensor parallel)
  std::unique_ptr<LlamaLoraModel> model_;
  std::unique_ptr<LoraOptimizer> optimizer_;
  TrainerState state_;
  nlohmann::json training_args_json_;
  Progress progress_;
  std::unique_ptr<MetricsWriter> metrics_;          // open while train() runs
  std::unique_ptr<TensorBoardWriter> tensorboard_;  // the same, with --report_to tensorboard
  std::optional<fs::path> last_checkpoint_;

  std::optional<RunLog> run_log_;  // throughput figures of this run
  double last_grad_norm_ = 0;
  double elapsed_at_start_ = 0;  // state_.elapsed_s when this run began
};

}  // namespace ll
