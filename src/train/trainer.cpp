// See trainer.h.
#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/text.h"
#include "core/version.h"
#include "model/adapter_shards.h"
#include "model/peft_adapter.h"
#include "model/tensor_parallel.h"
#include "train/batches.h"
#include "train/run_policy.h"

namespace ll {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kOrigin = "train";

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string format_number(const char* format, double value) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

// Removes what an earlier run left in `dir` (--overwrite_output_dir): its checkpoints, metrics
// and final adapter, so that `latest` and save_total_limit never mix two runs.
void clear_previous_run(const fs::path& dir) {
  std::error_code ec;
  for (const auto& [step, path] : list_checkpoints(dir)) {
    fs::remove_all(path, ec);
    check(!ec, kOrigin, path.string() + ": cannot remove: " + ec.message());
  }
  for (const char* file : {"metrics.jsonl", "adapter_model.safetensors", "adapter_config.json",
                           "training_args.json", "report.html"}) {
    fs::remove(dir / file, ec);
  }
  for (const std::string& shard : list_adapter_tp_shards(dir)) fs::remove(dir / shard, ec);
}

StepPlanSettings plan_settings(const TrainingArgs& args, uint64_t sequences, int64_t dp_rank,
                               int64_t dp_size, uint64_t shuffle_seed) {
  StepPlanSettings settings;
  settings.sequences = sequences;
  settings.batch_rows = args.per_device_train_batch_size;
  settings.accumulation = args.gradient_accumulation_steps;
  settings.dp_rank = dp_rank;
  settings.dp_size = dp_size;
  settings.drop_last = args.dataloader_drop_last;
  settings.max_steps = args.max_steps;
  settings.epochs = args.num_train_epochs;
  settings.shuffle_seed = shuffle_seed;
  return settings;
}

}  // namespace

// What the run computes in, for the logs and metrics (backend/ops.h Precision states it).
std::string compute_precision(const LlamaWeights& base, const Backend& backend) {
  if (backend.precision() == Precision::Bf16) {
    const char* weights = base.embed_tokens.dtype == DType::BF16  ? "bf16 weights"
                          : base.embed_tokens.dtype == DType::F16 ? "f16 weights"
                                                                  : "fp32 weights";
    return std::string(
               "bf16 compute (bf16 GEMM operands, fp32 accumulation; attention, norms, "
               "loss, optimizer fp32), ") +
           weights;
  }
  switch (base.embed_tokens.dtype) {
    case DType::BF16:
      return "bf16 weights, fp32 compute";
    case DType::F16:
      return "f16 weights, fp32 compute";
    default:
      return "fp32";
  }
}

Trainer::Trainer(const TrainingArgs& args, const LlamaWeights& base, const TokenSequences& train,
                 const TokenSequences& eval, TrainerOptions options)
    : args_(args),
      base_(base),
      train_(train),
      eval_(eval),
      options_(std::move(options)),
      plan_(plan_settings(args_, train.size(), dp_rank(), dp_size(), args.seed)),
      schedule_(parse_lr_schedule(args.lr_scheduler_type)),
      progress_(options_.progress) {
  const LlamaConfig& config = base_.config;
  check(args_.tensor_parallel_size == tp_size(), kOrigin,
        "--tensor_parallel_size " + std::to_string(args_.tensor_parallel_size) +
            " but the run's tensor-parallel group has " + std::to_string(tp_size()) + " rank(s)");
  check_tensor_parallel_size(config, tp_size());
  if (tp_size() > 1) local_weights_ = slice_weights_for_tp(base_, tp_rank(), tp_size());
  check(args_.max_seq_length <= config.max_position_embeddings, kOrigin,
        "--max_seq_length " + std::to_string(args_.max_seq_length) +
            " is above the model's max_position_embeddings (" +
            std::to_string(config.max_position_embeddings) + ")");
  check(args_.per_device_eval_batch_size >= 1, kOrigin,
        "batch sizes and gradient_accumulation_steps must be at least 1");
  const LoraConfig lora = lora_config_from_args(args_);
  const int64_t steps_per_epoch = plan_.steps_per_epoch();
  const int64_t total_steps = plan_.total_steps();
  warmup_steps_ = warmup_steps_for(args_.warmup_steps, args_.warmup_ratio, total_steps);

  if (!options_.resume && !args_.resume_from_checkpoint.empty()) {
    options_.resume =
        load_checkpoint(resolve_resume_checkpoint(args_.resume_from_checkpoint, args_.output_dir),
                        config, tp_rank(), tp_size());
  }
  if (options_.resume) {
    LoadedCheckpoint& ckpt = *options_.resume;
    const std::string where = ckpt.dir.string() + ": ";
    check(ckpt.adapter.config == lora, kOrigin,
          where +
              "its adapter (adapter_config.json) has other LoRA settings than this run's "
              "--lora_r/--lora_alpha/--lora_dropout/--use_rslora/--target_modules/"
              "--lora_rank_pattern/--lora_alpha_pattern/--layers_to_transform");
    const TrainerState& s = ckpt.state;
    check(s.data_parallel_size == dp_size() && s.tensor_parallel_size == tp_size(), kOrigin,
          where + "it was written by " + std::to_string(s.tensor_parallel_size) +
              " tensor-parallel x " + std::to_string(s.data_parallel_size) +
              " data-parallel ranks, this run has " + std::to_string(tp_size()) + " x " +
              std::to_string(dp_size()) + "; resume with the same topology");
    check(s.train_sequences == train_.size() &&
              s.per_device_train_batch_size == args_.per_device_train_batch_size &&
              s.gradient_accumulation_steps == args_.gradient_accumulation_steps &&
              s.steps_per_epoch == steps_per_epoch,
          kOrigin,
          where + "it was trained on " + std::to_string(s.train_sequences) +
              " sequences with batch " + std::to_string(s.per_device_train_batch_size) +
              " x accumulation " + std::to_string(s.gradient_accumulation_steps) +
              ", this run has " + std::to_string(train_.size()) + " with " +
              std::to_string(args_.per_device_train_batch_size) + " x " +
              std::to_string(args_.gradient_accumulation_steps) + " (" +
              std::to_string(s.steps_per_epoch) + " vs " + std::to_string(steps_per_epoch) +
              " steps per epoch); resuming needs the same data, batch and "
              "--dataloader_drop_last settings");
    check(s.global_step <= total_steps, kOrigin,
          where + "it is at step " + std::to_string(s.global_step) + ", past this run's " +
              std::to_string(total_steps) + " steps");
    // The checkpoint's seeds win over --seed: they fix the data order and dropout masks.
    adapter_ = std::move(ckpt.adapter);
    state_ = s;
    plan_ = StepPlan(plan_settings(args_, train_.size(), dp_rank(), dp_size(), s.shuffle_seed));
    last_checkpoint_ = ckpt.dir;
  } else {
    // Every rank draws the whole adapter from the seed and keeps its share, so any topology
    // starts from the single-process run's weights.
    LoraAdapter whole = lora_init(config, lora, args_.seed);
    adapter_ = tp_size() > 1 ? slice_adapter_for_tp(whole, tp_rank(), tp_size()) : std::move(whole);
    state_.seed = args_.seed;
    state_.shuffle_seed = args_.seed;
    state_.train_sequences = train_.size();
    state_.per_device_train_batch_size = args_.per_device_train_batch_size;
    state_.gradient_accumulation_steps = args_.gradient_accumulation_steps;
  }
  state_.total_steps = total_steps;
  state_.steps_per_epoch = steps_per_epoch;
  state_.tensor_parallel_size = tp_size();
  state_.data_parallel_size = dp_size();
  state_.logging_steps = args_.logging_steps;
  state_.eval_steps = args_.eval_steps;
  state_.save_steps = args_.save_steps;

  ModelOptions model_options;
  model_options.checkpointing = !args_.gradient_checkpointing            ? Checkpointing::Off
                                : args_.checkpoint_granularity == "full" ? Checkpointing::Full
                                                                         : Checkpointing::Selective;
  if (tp_size() > 1) model_options.tensor_parallel = options_.parallel->tp.get();
  if (args_.profile) {
    profiler_ = std::make_unique<ProfilingBackend>(backend());
    options_.backend = profiler_.get();
  }
  model_options.backend = options_.backend;
  // The parameter store lives where the model runs.
  if (options_.backend != nullptr && &adapter_.backend() != options_.backend) {
    adapter_ = adapter_.on_backend(*options_.backend);
  }
  model_ = std::make_unique<LlamaLoraModel>(weights(), &adapter_, model_options);
  optimizer_ = std::make_unique<LoraOptimizer>(
      adapter_, OptimizerSettings{args_.adam_beta1, args_.adam_beta2, args_.adam_epsilon,
                                  args_.weight_decay, args_.max_grad_norm});
  if (options_.resume) {
    restore_optimizer(*optimizer_, *options_.resume);
    options_.resume.reset();  // the moments now live in the optimizer
  }
  training_args_json_ = args_.to_json();
  training_args_json_["compute_precision"] = compute_precision(base_, backend());
  training_args_json_["compute"] = precision_name(backend().precision());
  training_args_json_["llama_lora_version"] = kLlamaLoraVersion;
  std::optional<PeakFlops> peak = cpu_peak_flops();
  const int world_size = options_.parallel ? options_.parallel->world->size() : 1;
  if (peak && options_.parallel) {
    // The run's FLOPs are over every machine's cores (ranks per machine from the launcher).
    const int machines = std::max(1, world_size / processes_on_this_machine());
    if (machines > 1) {
      peak->flops_per_s *= machines;
      peak->description += " x " + std::to_string(machines) + " machines";
    }
  }
  run_log_.emplace(std::move(peak), world_size);
}

Trainer::~Trainer() = default;

std::optional<double> Trainer::evaluate() {
  if (eval_.size() == 0) return std::nullopt;
  const LossTotals totals =
      sum_sequence_losses(*model_, eval_, static_cast<uint64_t>(args_.per_device_eval_batch_size),
                          static_cast<uint64_t>(dp_rank()), static_cast<uint64_t>(dp_size()));
  double sums[2] = {totals.sum, static_cast<double>(totals.label_tokens)};
  if (dp_size() > 1) options_.parallel->dp->all_reduce(sums, 2, ReduceOp::Sum);
  if (sums[1] == 0) return std::nullopt;
  return sums[0] / sums[1];
}

void Trainer::fail_not_finite(int64_t step, const char* what, double value) const {
  const std::string text = std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf";
  fail(kOrigin, "step " + std::to_string(step) + ": " + what + " is " + text +
                    "; last good checkpoint: " +
                    (last_checkpoint_ ? last_checkpoint_->string() : std::string("none")));
}

StepRecord Trainer::run_step() {
  const int64_t step = state_.global_step;  // 0-based index of this step
  std::vector<TokenBatch> micro_batches;
  std::vector<int64_t> micro_index;  // names the dropout masks
  double label_tokens = 0, tokens = 0, context_sum = 0;
  for (const PlannedMicroBatch& micro : plan_.micro_batches(step)) {
    micro_batches.push_back(make_token_batch(train_, micro.rows));
    micro_index.push_back(micro.index);
    const TokenBatch& batch = micro_batches.back();
    label_tokens += static_cast<double>(batch.target_count());
    for (size_t r = 0; r < micro.rows.size(); ++r) {
      const uint32_t valid = train_.valid_tokens[micro.rows[r]];
      tokens += valid;
      for (uint32_t t = 0; t < valid; ++t) {
        context_sum += batch.positions[r * static_cast<size_t>(batch.seq_len) + t] + 1;
      }
    }
  }

  if (profiler_) profiler_->reset();  // drops the ops of evals and saves between steps
  const auto start = Clock::now();
  Communicator* world = options_.parallel ? options_.parallel->world : nullptr;
  const double comm_before = world ? world->seconds_in_collectives() : 0;
  // The whole step's counts (every data-parallel rank's rows).
  double counts[3] = {label_tokens, tokens, context_sum};
  if (dp_size() > 1) options_.parallel->dp->all_reduce(counts, 3, ReduceOp::Sum);
  tokens = counts[1];
  context_sum = counts[2];
  adapter_.zero_grad();
  // Every micro-batch's loss gradient is scaled by 1 / (label tokens of the whole step), so
  // the sum over micro-batches is the step's mean loss and its exact gradient.
  const double loss_scale = 1.0 / std::max(1.0, counts[0]);
  double loss = 0;
  for (size_t m = 0; m < micro_batches.size(); ++m) {
    model_->set_dropout_seed(micro_batch_dropout_seed(state_.seed, step, micro_index[m]));
    loss += model_->forward_backward(micro_batches[m], loss_scale);
  }
  if (dp_size() > 1) options_.parallel->dp->all_reduce(&loss, 1, ReduceOp::Sum);
  if (!std::isfinite(loss)) fail_not_finite(step + 1, "loss", loss);
  reduce_gradients();
  double lr = 0;
  double grad_norm = 0;
  {
    const BackendRegion region(backend(), "optimizer");
    grad_norm = optimizer_->clip_gradients(tp_size() > 1 ? options_.parallel->tp.get() : nullptr);
    if (!std::isfinite(grad_norm)) fail_not_finite(step + 1, "grad norm", grad_norm);
    lr = scheduled_lr(schedule_, args_.learning_rate, step, warmup_steps_, state_.total_steps);
    optimizer_->step(lr);
  }
  StepCost cost;
  cost.seconds = seconds_since(start);
  cost.comm_seconds = world ? world->seconds_in_collectives() - comm_before : 0;
  if (profiler_ && ++steps_this_run_ > 1) {  // the first step creates primitives and buffers
    for (const auto& [key, time] : profiler_->profile()) {
      OpTime& sum = profile_sum_[key];
      sum.seconds += time.seconds;
      sum.calls += time.calls;
    }
    ++profiled_.steps;
    profiled_.seconds += cost.seconds;
    profiled_.comm_seconds += cost.comm_seconds;
  }

  ++state_.global_step;
  state_.data_epoch = state_.global_step / state_.steps_per_epoch;
  state_.data_index =
      static_cast<uint64_t>((state_.global_step % state_.steps_per_epoch) * plan_.rows_per_step());
  state_.loss_sum_since_log += loss;
  ++state_.steps_since_log;
  state_.loss_sum_total += loss;
  last_grad_norm_ = grad_norm;

  cost.tokens = tokens;
  state_.trained_tokens += static_cast<int64_t>(tokens);
  const double mean_context = tokens > 0 ? context_sum / tokens : 0;
  cost.flops = tokens * lora_flops_per_token(base_.config, lora_parameter_count(), mean_context);
  run_log_->add(cost);
  return {state_.global_step, loss, grad_norm, lr};
}

void Trainer::reduce_gradients() {
  // Replicated LoRA tensors got a partial gradient on each tensor-parallel rank (they are the
  // head of the gradient block); then the whole block is summed over the data-parallel ranks.
  // Both all-reduces run in place on the adapter's gradient block.
  const std::span<float> grads = adapter_.gradients();
  if (tp_size() > 1) {
    options_.parallel->tp->all_reduce(grads.data(), adapter_.replicated_count(), ReduceOp::Sum);
  }
  if (dp_size() > 1) {
    options_.parallel->dp->all_reduce(grads.data(), static_cast<int64_t>(grads.size()),
                                      ReduceOp::Sum);
  }
}

int64_t Trainer::lora_parameter_count() const {
  int64_t count = 0;
  for (const LoraTensor& tensor : adapter_.tensors()) {
    count += tensor.split == TpSplit::Replicated ? tensor.count() : tensor.count() * tp_size();
  }
  return count;
}

bool Trainer::any_rank(bool value) {
  if (!options_.parallel || options_.parallel->world->size() == 1) return value;
  int64_t flag = value ? 1 : 0;
  options_.parallel->world->all_reduce(&flag, 1, ReduceOp::Max);
  return flag != 0;
}

void Trainer::write_final_adapter() {
  const fs::path out = args_.output_dir;
  if (tp_size() == 1) {
    if (main_rank()) save_peft_adapter(out, adapter_, options_.base_model);
    return;
  }
  // Tensor parallel: the shards and their config, as in a checkpoint (consolidate joins them).
  if (dp_rank() == 0) write_adapter_tp_shard(out, adapter_, tp_rank(), tp_size());
  if (main_rank()) save_peft_adapter_config(out, adapter_.config, options_.base_model);
  options_.parallel->world->barrier();
}

void Trainer::log_metrics(json line) {
  if (metrics_) metrics_->write(line);
  if (tensorboard_) tensorboard_->write_metrics(line);
  state_.log_history.push_back(std::move(line));
}

// A new event file per run (TensorBoard merges a folder's files); a resume continues in its
// run's folder and writes only the steps it takes.
void Trainer::open_tensorboard(bool resumed) {
  const fs::path out = args_.output_dir;
  if (!args_.logging_dir.empty()) {
    state_.logging_dir = fs::absolute(args_.logging_dir).string();
  } else if (!resumed || state_.logging_dir.empty()) {
    state_.logging_dir = default_logging_dir(out).lexically_relative(out).string();
  }
  const fs::path dir = fs::path(state_.logging_dir).is_absolute() ? fs::path(state_.logging_dir)
                                                                  : out / state_.logging_dir;
  tensorboard_ = std::make_unique<TensorBoardWriter>(dir);
  if (resumed) tensorboard_->write_session_start(state_.global_step + 1);
  progress_.message("[train] TensorBoard events: " + tensorboard_->path().string());
}

void Trainer::run_eval(TrainResult& result) {
  const auto start = Clock::now();
  const std::optional<double> loss = evaluate();
  if (!loss) return;
  const double runtime = seconds_since(start);
  log_metrics({{"step", state_.global_step},
               {"epoch", state_.epoch()},
               {"eval_loss", *loss},
               {"eval_perplexity", std::exp(*loss)},
               {"eval_runtime_s", runtime}});
  result.evals.emplace_back(state_.global_step, *loss);
  progress_.message("[train] step " + std::to_string(state_.global_step) + " eval_loss " +
                    format_number("%.4f", *loss) + " perplexity " +
                    format_number("%.2f", std::exp(*loss)) + " (" + format_number("%.1f", runtime) +
                    " s)");
}

fs::path Trainer::save(TrainResult& result) {
  const fs::path path =
      save_checkpoint(args_.output_dir, adapter_, *optimizer_, state_, training_args_json_,
                      options_.base_model, options_.parallel);
  last_checkpoint_ = path;
  result.last_checkpoint = path;
  if (main_rank()) remove_old_checkpoints(args_.output_dir, args_.save_total_limit);
  // save_total_limit may not remove the checkpoint just written: it is the newest.
  return path;
}

TrainResult Trainer::train() {
  const auto run_start = Clock::now();
  const fs::path out = args_.output_dir;
  const bool resumed = state_.global_step > 0 || last_checkpoint_.has_value();
  if (main_rank()) {
    std::error_code ec;
    fs::create_directories(out, ec);
    check(!ec && fs::is_directory(out, ec), kOrigin,
          "--output_dir " + out.string() + ": cannot create folder: " + ec.message());
    if (!resumed && args_.overwrite_output_dir) clear_previous_run(out);
    // metrics.jsonl holds exactly the run's history: on resume, what the checkpoint logged
    // (lines a killed run wrote after its last checkpoint are dropped with that run).
    std::string history;
    for (const json& line : state_.log_history) history += line.dump() + "\n";
    write_file_atomic(out / "metrics.jsonl", history);
    metrics_ = std::make_unique<MetricsWriter>(out / "metrics.jsonl");
    // The settings beside the metrics (each checkpoint has its copy): a run that dies before
    // its first checkpoint still says what it was (llama-lora report).
    write_file_atomic(out / "training_args.json", training_args_json_.dump(2) + "\n");
    if (reports_to_tensorboard(args_.report_to)) open_tensorboard(resumed);
  }

  TrainResult result;
  result.total_steps = state_.total_steps;
  result.last_checkpoint = last_checkpoint_;
  elapsed_at_start_ = state_.elapsed_s;
  const auto elapsed = [&] { return elapsed_at_start_ + seconds_since(run_start); };

  progress_.message("[train] " + format_count(train_.size()) + " sequences of " +
                    std::to_string(train_.seq_length) + " tokens (eval " +
                    format_count(eval_.size()) + "), " + std::to_string(state_.total_steps) +
                    " steps (" + std::to_string(state_.steps_per_epoch) + " per epoch) of " +
                    std::to_string(args_.per_device_train_batch_size) + " x " +
                    std::to_string(args_.gradient_accumulation_steps) + " sequences" +
                    (dp_size() > 1 || tp_size() > 1
                         ? " x " + std::to_string(dp_size()) + " data-parallel ranks, tensor " +
                               "parallel " + std::to_string(tp_size())
                         : std::string()) +
                    "; LoRA r " + std::to_string(adapter_.config.r) + ", " +
                    format_count(static_cast<uint64_t>(lora_parameter_count())) + " parameters; " +
                    compute_precision(base_, backend()) + "; MFU peak: " +
                    (run_log_->peak() ? run_log_->peak()->description
                                      : std::string("unknown (mfu reported as null)")));
  if (resumed) {
    progress_.message("[train] resuming from " +
                      (last_checkpoint_ ? last_checkpoint_->string() : std::string("?")) +
                      " at step " + std::to_string(state_.global_step));
  }

  RunPolicy policy(Interval{parse_interval_strategy(args_.logging_strategy), args_.logging_steps},
                   Interval{parse_interval_strategy(args_.eval_strategy), args_.eval_steps},
                   Interval{parse_interval_strategy(args_.save_strategy), args_.save_steps},
                   state_.steps_per_epoch, state_.global_step, resumed);
  if (policy.eval_before_training()) run_eval(result);  // the base model's loss
  result.outcome = TrainResult::Outcome::Finished;
  while (state_.global_step < state_.total_steps) {
    if (any_rank(options_.stop_requested && options_.stop_requested())) {
      result.outcome = TrainResult::Outcome::Stopped;
      break;
    }
    const StepRecord record = run_step();
    result.steps.push_back(record);
    const int64_t step = state_.global_step;
    const bool log_now = policy.log_after(step, state_.total_steps);
    // The progress shows the step's own loss and rate, a logged step the logged figures.
    double shown_loss = record.loss, shown_lr = record.learning_rate;
    if (log_now) {
      shown_loss = state_.loss_sum_since_log / static_cast<double>(state_.steps_since_log);
      shown_lr = scheduled_lr(schedule_, args_.learning_rate, step, warmup_steps_,
                              state_.total_steps);  // HF logs the next step's rate
      json line = run_log_->take_interval();
      line["step"] = step;
      line["epoch"] = state_.epoch();
      line["loss"] = shown_loss;
      line["learning_rate"] = shown_lr;
      line["grad_norm"] = last_grad_norm_;
      line["peak_rss_bytes"] = peak_rss_bytes();
      line["elapsed_s"] = elapsed();
      log_metrics(std::move(line));
      state_.loss_sum_since_log = 0;
      state_.steps_since_log = 0;
    }
    progress_.on_step({step, state_.total_steps, shown_loss, shown_lr, run_log_->tokens_per_s(),
                       run_log_->eta_seconds(state_.total_steps - step), peak_rss_bytes()},
                      log_now ? StepLogged::Yes : StepLogged::No);
    if (policy.eval_after(step)) run_eval(result);
    if (policy.save_after(step)) {
      state_.elapsed_s = elapsed();
      save(result);
    }
  }

  const int64_t step = state_.global_step;
  if (result.outcome == TrainResult::Outcome::Finished) {
    if (policy.eval_at_end(step)) run_eval(result);
    state_.elapsed_s = elapsed();
    if (policy.save_at_end(step)) save(result);
    write_final_adapter();
    json summary = {
        {"step", step},
        {"epoch", state_.epoch()},
        {"train_loss", step > 0 ? state_.loss_sum_total / static_cast<double>(step) : 0},
        {"train_runtime_s", seconds_since(run_start)},
        {"train_tokens_per_s", run_log_->tokens_per_s()},
        {"train_tokens", state_.trained_tokens},
        {"elapsed_s", state_.elapsed_s},
        {"peak_rss_bytes", peak_rss_bytes()},
        {"compute_precision", compute_precision(base_, backend())},
        {"compute", precision_name(backend().precision())}};
    if (profiler_) {
      if (profiled_.steps > 0) {
        summary["profile"] = step_profile_json(profile_sum_, profiled_);
        for (const std::string& line : step_profile_table(summary["profile"])) {
          progress_.message(line);
        }
      } else {
        progress_.message("[profile] nothing profiled: the run took fewer than 2 steps");
      }
    }
    if (metrics_) metrics_->write(summary);
    if (tensorboard_) tensorboard_->write_metrics(summary);
  } else if (policy.save_at_stop(step)) {
    state_.elapsed_s = elapsed();
    save(result);
  }
  progress_.finish();

  result.global_step = step;
  result.train_loss = step > 0 ? state_.loss_sum_total / static_cast<double>(step) : 0;
  result.seconds = seconds_since(run_start);
  result.trained_tokens = run_log_->tokens();
  result.tokens_per_s = run_log_->tokens_per_s();
  result.last_checkpoint = last_checkpoint_;
  return result;
}

}  // namespace ll
