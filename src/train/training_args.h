// Every setting of `llama-lora train`, under Hugging Face TrainingArguments / peft / TRL names
// so that the seed's launch flags work as they are. Defaults are transformers' own; the `sql`
// recipe sets the seed's (SEED.md step 1). Precedence: defaults < recipe < recipe file < flags:
// `--recipe` (name or file, repeatable, applied left to right) always goes before the flags,
// wherever it stands on the command line.
//
// Flags are HfArgumentParser-style: `--name VALUE` or `--name=VALUE`; a flag given twice takes
// the last value (so `launch.sh "$@"` can override). Booleans accept `--bf16` alone (true) or a
// value: true/false, t/f, yes/no, y/n, 1/0, on/off, any case. Every flag either does what its
// Hugging Face namesake does or refuses the values it cannot honour, naming the ones it takes
// (`--optim sgd`, `--save_strategy best`, `--do_train False`, `--report_to wandb`); two accepted
// ones change nothing by nature (--zero_1, --remove_unused_columns). docs/FLAGS.md lists every
// flag with its status, generated from the table (train/training_fields.h) and checked by a
// test. Any other flag is CLI11's "not expected" error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace CLI {
class App;
}

namespace ll {

struct TrainingArgs {
  // Model and data.
  std::string model;      // --model (aliases --model_id, --model_name_or_path): HF model folder
  std::string tokenizer;  // --tokenizer: folder with tokenizer.json (default: the model's)
  std::string data;       // --data (alias --dataset_path): JSONL / JSON file
  std::string preset = "sql";  // sql | messages | alpaca | text
  int64_t max_seq_length = 1024;
  bool packing = true;
  bool completion_only_loss = false;  // loss on assistant tokens only
  bool skip_bad_rows = false;
  int64_t train_rows = 50000;  // split sizes after the seed-23 shuffle (see data/split.h)
  int64_t eval_rows = 500;
  uint64_t data_seed = 23;

  // Optimisation (transformers.TrainingArguments).
  std::string output_dir;
  int64_t per_device_train_batch_size = 8;
  int64_t per_device_eval_batch_size = 8;
  int64_t gradient_accumulation_steps = 1;
  int64_t max_steps = -1;  // > 0 overrides num_train_epochs
  double num_train_epochs = 3.0;
  double learning_rate = 5e-5;
  std::string lr_scheduler_type = "linear";
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  std::string optim = "adamw_torch_fused";  // or adamw_torch: both torch.optim.AdamW's update
  double max_grad_norm = 1.0;               // 0: no clipping (transformers clips only when > 0)
  uint64_t seed = 42;

  // Logging, evaluation and checkpoints: each strategy is no | steps | epoch.
  std::string logging_strategy = "steps";
  int64_t logging_steps = 500;
  // llama-lora's default (transformers': no): evaluates before the first step, every
  // eval_steps (0: never in between) and at the end.
  std::string eval_strategy = "steps";
  std::string save_strategy = "steps";
  // "tensorboard" (or HF's "all"): event files of every metrics line in logging_dir
  // (train/tensorboard.h); "none": nothing. transformers 5's default.
  std::string report_to = "none";
  std::string logging_dir;  // "": <output_dir>/runs/<Mon><DD>_<HH>-<MM>-<SS>_<host>, as HF
  int64_t save_steps = 500;
  int64_t eval_steps = 0;        // 0: no evaluation during training
  int64_t save_total_limit = 0;  // 0: keep every checkpoint
  bool bf16 = false;
  bool profile = false;  // per-op time breakdown of the steady-state steps (--profile)
  bool gradient_checkpointing = false;
  std::string checkpoint_granularity = "selective";  // selective | full (model/llama_model.h)
  bool dataloader_drop_last = false;
  bool overwrite_output_dir = false;
  std::string resume_from_checkpoint;  // a checkpoint folder, or "latest"

  // LoRA (peft.LoraConfig).
  int64_t lora_r = 8;
  double lora_alpha = 16.0;
  double lora_dropout = 0.0;
  std::string target_modules = "q_proj,v_proj";  // comma list or all-linear
  bool use_rslora = false;
  std::string lora_rank_pattern;    // JSON object key -> r ("": none), train/lora_args.h
  std::string lora_alpha_pattern;   // JSON object key -> alpha ("": none)
  std::string layers_to_transform;  // comma list of layer indices ("": every layer)

  // Parallelism: world = tensor_parallel_size x data-parallel ranks (mpirun -np).
  int64_t tensor_parallel_size = 1;
  double ddp_timeout = 1800;  // seconds a collective may wait for the other ranks

  // Launch-script flags. do_train must stay true (`train` always trains); zero_1 and
  // remove_unused_columns change nothing here (docs/FLAGS.md says why).
  bool do_train = true;
  bool zero_1 = false;
  bool remove_unused_columns = true;

  // Every setting, keyed by its flag name without dashes (training_args.json in
  // checkpoints). The result is itself a valid JSON recipe file: load_recipe_file() on it
  // gives the same settings back.
  nlohmann::json to_json() const;
};

// The built-in recipe names ("sql").
std::vector<std::string_view> recipe_names();

// The seed's settings (SEED.md step 1): LoRA r 8, alpha 64, dropout 0.05, all seven
// projections, rsLoRA; bf16; batch 8; lr 1e-5; 250 steps; logging 10; packing at 1024;
// gradient checkpointing; drop last; sql preset with the seed-23 50,000 / 500 split; saves
// every 250 steps (the seed's one checkpoint-250). A recipe sets only its own settings, on top
// of whatever `args` holds. `name` may also be a recipe file: one ending .yaml/.yml/.json, or
// any existing file (built-in names win). Unknown names are an error listing the known ones.
void apply_recipe(TrainingArgs& args, const std::string& name);

// Adds every flag of `train` to `command`, bound to `args` (which must outlive the parse);
// `--recipe NAME|FILE` is applied before the flags (so flags override it). Booleans accept
// `--bf16`, `--bf16 True`, `--bf16=false`. A bad value makes parse() throw ll::Error
// ("[train] --lora_r: expected an integer, got 'x'"); an unknown flag, CLI::ParseError.
// Call validate_training_args() once parsing is done.
void add_training_flags(CLI::App& command, TrainingArgs& args);

// Reads a YAML or JSON recipe file (keys are the flag names without dashes) into `args`:
// one mapping of key: value; target_modules may also be a list. .json files are read as JSON
// (strict types: numbers, true/false, strings), others as YAML. Unknown keys and wrong types
// are errors naming the file and key; a file with an error leaves `args` as it was.
void load_recipe_file(TrainingArgs& args, const std::string& path);

// docs/FLAGS.md: every flag of `llama-lora train` with its origin, default and status, from the
// table; tests/train/test_flags_doc.cpp fails when the committed file differs.
std::string training_flags_markdown();

// Checks each setting and the settings against each other, before anything is loaded
// (ll::Error "[train] --flag ..."); checks that need the model or data come later.
void validate_training_args(const TrainingArgs& args);

}  // namespace ll
