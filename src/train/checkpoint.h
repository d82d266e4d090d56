// Training checkpoints (DESIGN.md "On disk"), written so that a run can stop anywhere and
// continue exactly:
//
//   <output_dir>/checkpoint-<step>/
//     adapter_config.json + adapter_model.safetensors   the LoRA weights (peft can load them)
//     (tensor parallel size n > 1: adapter-tp<r>-of-<n>.safetensors + optimizer-tp<r>.safetensors
//      per rank r in place of the two safetensors files; model/adapter_shards.h)
//     optimizer.safetensors   AdamW moments, F32, one pair per LoRA tensor, named like it +
//                             ".exp_avg" / ".exp_avg_sq"; metadata "step" = AdamW steps taken
//     trainer_state.json      HF's fields (global_step, epoch, max_steps, log_history, ...) and
//                             ours under "llama_lora": data position (epoch and index into the
//                             epoch's order), seeds, the logging sums, the batch geometry
//     training_args.json      every setting of the run
//
// A checkpoint is built in a ".tmp-" folder beside it and renamed into place (StagedDir): a
// crash never leaves a folder named checkpoint-<step> that is incomplete. Loading reads and
// checks every file before the caller changes anything; errors name the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/file.h"
#include "model/lora.h"
#include "parallel/communicator.h"
#include "train/optimizer.h"

namespace ll {

struct TrainingArgs;

// Where a run stands after `global_step` optimizer steps.
struct TrainerState {
  int64_t global_step = 0;
  int64_t total_steps = 0;      // the schedule's length (HF max_steps)
  int64_t steps_per_epoch = 0;  // optimizer steps per pass over the training sequences
  // Data position of the next step: its epoch and the index, in that epoch's shuffled order
  // (train/batches.h epoch_order), of its first sequence.
  int64_t data_epoch = 0;
  uint64_t data_index = 0;
  uint64_t seed = 0;          // LoRA init and dropout masks (micro_batch_dropout_seed)
  uint64_t shuffle_seed = 0;  // epoch e is ordered by numpy default_rng(shuffle_seed + e)
  // The batch geometry the data position assumes; a resume must use the same.
  uint64_t train_sequences = 0;
  int64_t per_device_train_batch_size = 0;
  int64_t gradient_accumulation_steps = 0;
  int64_t tensor_parallel_size = 1;  // the topology that wrote it (resume needs the same tp)
  int64_t data_parallel_size = 1;
  // Logging sums, so that a resumed run logs exactly what an uninterrupted one would.
  double loss_sum_since_log = 0;
  int64_t steps_since_log = 0;
  double loss_sum_total = 0;   // over every step so far (train_loss at the end)
  double elapsed_s = 0;        // training time so far, over every resume
  int64_t trained_tokens = 0;  // tokens trained so far (every rank), over every resume
  int64_t logging_steps = 0, eval_steps = 0, save_steps = 0;
  // TensorBoard's folder (--report_to tensorboard), so that a resume writes into the same one:
  // relative to output_dir when it is the default ("runs/Dec03_12-45-00_host"); "" when none.
  std::string logging_dir;
  nlohmann::json log_history = nlohmann::json::array();  // every metrics.jsonl line so far

  double epoch() const;  // global_step / steps_per_epoch, as HF logs it
};

nlohmann::json trainer_state_to_json(const TrainerState& state);
// `origin` names the file in errors.
TrainerState trainer_state_from_json(const nlohmann::json& json, const std::string& origin);

// Writes <output_dir>/checkpoint-<state.global_step>/ (replacing one of that name) and returns
// its path. In a distributed run (`parallel` not null) every rank calls it with its share of
// the adapter and optimizer: data-parallel rank 0 of each tensor-parallel rank writes
// adapter-tp<r>-of-<n>.safetensors and optimizer-tp<r>.safetensors (with n > 1), world rank 0
// the json files, and rank 0 renames the staged folder after a barrier.
fs::path save_checkpoint(const fs::path& output_dir, const LoraAdapter& adapter,
                         LoraOptimizer& optimizer, const TrainerState& state,
                         const nlohmann::json& training_args, const std::string& base_model,
                         const ParallelGroups* parallel = nullptr);

// The adapter and optimizer files of tensor-parallel rank `tp_rank` of `tp_size`:
// adapter_model.safetensors / optimizer.safetensors with tp_size 1, else
// adapter-tp<r>-of-<n>.safetensors / optimizer-tp<r>.safetensors.
std::string adapter_file_name(int64_t tp_rank, int64_t tp_size);
std::string optimizer_file_name(int64_t tp_rank, int64_t tp_size);

struct LoadedCheckpoint {
  fs::path dir;
  LoraAdapter adapter;
  // The AdamW moments, host memory laid out as adapter.tensors()' offsets say (the
  // optimizer's blocks).
  std::vector<float> exp_avg;
  std::vector<float> exp_avg_sq;
  std::vector<LoraTensor> moment_layout;  // adapter.tensors() when read (the adapter may move)
  int64_t optimizer_steps = 0;
  TrainerState state;
};

// Reads and checks a checkpoint for a model of shape `model` (the whole model's config):
// with tp_size > 1, tensor-parallel rank tp_rank's share of the adapter and optimizer (the
// checkpoint must have been written with the same tp_size).
LoadedCheckpoint load_checkpoint(const fs::path& dir, const LlamaConfig& model, int64_t tp_rank = 0,
                                 int64_t tp_size = 1);

// Puts the checkpoint's moments and step count into `optimizer` (built on its adapter).
void restore_optimizer(LoraOptimizer& optimizer, const LoadedCheckpoint& checkpoint);

// The checkpoint-<step> folders of `output_dir`, by ascending step.
std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& output_dir);

// `value` is a checkpoint folder or "latest" (the highest step in `output_dir`).
fs::path resolve_resume_checkpoint(const std::string& value, const fs::path& output_dir);

// Removes the oldest checkpoints so that at most `keep` remain (keep <= 0: keep all).
void remove_old_checkpoints(const fs::path& output_dir, int64_t keep);

// Before a run writes anything: the output folder must be creatable and writable (or exist
// as a writable folder), and must not hold an earlier run's checkpoints, final adapter or
// metrics unless --overwrite_output_dir or --resume_from_checkpoint says what to do with
// them (Hugging Face's rule). Errors name the folder and the flag.
void check_output_dir(const TrainingArgs& args);

}  // namespace ll
