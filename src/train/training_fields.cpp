// See training_fields.h: the table of `llama-lora train`'s settings and the converters of
// their values.
#include "train/training_fields.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <type_traits>

#include "train/lr_schedule.h"

namespace ll {

namespace {

constexpr std::string_view kDataGroup = "Model and data";
constexpr std::string_view kOptimGroup = "Optimisation (transformers.TrainingArguments)";
constexpr std::string_view kScheduleGroup = "Logging, evaluation and checkpoints";
constexpr std::string_view kLoraGroup = "LoRA (peft.LoraConfig)";
constexpr std::string_view kParallelGroup = "Parallelism";
constexpr std::string_view kCompatGroup = "Launch-script flags";

constexpr FlagOrigin kHf = FlagOrigin::Transformers;
constexpr FlagOrigin kTrl = FlagOrigin::Trl;
constexpr FlagOrigin kPeft = FlagOrigin::Peft;
constexpr FlagOrigin kNeuron = FlagOrigin::OptimumNeuron;
constexpr FlagOrigin kOurs = FlagOrigin::LlamaLora;
constexpr FlagSupport kPartly = FlagSupport::Partly;
constexpr FlagSupport kNoEffect = FlagSupport::NoEffect;

// transformers' IntervalStrategy (SaveStrategy adds "best", refused).
constexpr std::array<std::string_view, 3> kStrategies = {"no", "steps", "epoch"};
constexpr std::array<std::string_view, 2> kOptimizers = {"adamw_torch", "adamw_torch_fused"};
constexpr std::array<std::string_view, 2> kCheckpointGranularities = {"selective", "full"};

using A = TrainingArgs;
const std::array kFields = {
    Field{"model", &A::model, kDataGroup, kOurs,
          "Hugging Face model folder (config.json, *.safetensors)",
          ",--model_id,--model_name_or_path"},
    Field{"tokenizer", &A::tokenizer, kDataGroup, kOurs,
          "Folder with tokenizer.json and its chat template (default: the model's)"},
    Field{"data", &A::data, kDataGroup, kOurs, "Dataset file: JSON lines or a JSON array",
          ",--dataset_path"},
    Field{"preset", &A::preset, kDataGroup, kOurs,
          "How a row becomes an example: sql, messages, alpaca or text"},
    Field{"max_seq_length",
          &A::max_seq_length,
          kDataGroup,
          kTrl,
          "Tokens per training sequence",
          {},
          {},
          FlagSupport::Works,
          "TRL's older name (newer TRL: max_length)"},
    Field{"packing",
          &A::packing,
          kDataGroup,
          kTrl,
          "Concatenate examples into full-length sequences",
          {},
          {},
          FlagSupport::Works,
          "default true (TRL's: false)"},
    Field{"completion_only_loss",
          &A::completion_only_loss,
          kDataGroup,
          kTrl,
          "Loss on the assistant's tokens only",
          {},
          {},
          FlagSupport::Works,
          "default false: loss on every token unless set (TRL's default turns it on for "
          "prompt-completion datasets)"},
    Field{"skip_bad_rows", &A::skip_bad_rows, kDataGroup, kOurs,
          "Skip (and count) rows that do not fit the preset instead of failing"},
    Field{"train_rows", &A::train_rows, kDataGroup, kOurs, "Training rows after the shuffle"},
    Field{"eval_rows", &A::eval_rows, kDataGroup, kOurs, "Evaluation rows after the training rows"},
    Field{"data_seed",
          &A::data_seed,
          kDataGroup,
          kHf,
          "Seed of the dataset shuffle before the train/eval split",
          {},
          {},
          FlagSupport::Differs,
          "a different use of transformers' name: here it seeds the shuffle that picks the "
          "train and eval rows (the seed's dataset.shuffle(seed=23)); the batch order follows "
          "--seed. transformers: the training sampler's seed"},

    Field{"output_dir", &A::output_dir, kOptimGroup, kHf, "Folder for checkpoints and logs"},
    Field{"per_device_train_batch_size", &A::per_device_train_batch_size, kOptimGroup, kHf,
          "Sequences per micro-batch"},
    Field{"per_device_eval_batch_size", &A::per_device_eval_batch_size, kOptimGroup, kHf,
          "Sequences per evaluation batch"},
    Field{"gradient_accumulation_steps", &A::gradient_accumulation_steps, kOptimGroup, kHf,
          "Micro-batches per optimizer step"},
    Field{"max_steps", &A::max_steps, kOptimGroup, kHf,
          "Optimizer steps; > 0 overrides --num_train_epochs"},
    Field{"num_train_epochs", &A::num_train_epochs, kOptimGroup, kHf,
          "Passes over the training set"},
    Field{"learning_rate", &A::learning_rate, kOptimGroup, kHf, "Peak AdamW learning rate"},
    Field{
        "lr_scheduler_type",
        &A::lr_scheduler_type,
        kOptimGroup,
        kHf,
        "linear, cosine, constant (no warm-up) or constant_with_warmup",
        {},
        kLrScheduleNames,
        kPartly,
        "every step's rate equals transformers' get_scheduler (tests/train/test_lr_schedule.cpp). "
        "Its other schedules are refused, and so is a warm-up with constant, which has none "
        "(transformers ignores it)"},
    Field{"warmup_steps",
          &A::warmup_steps,
          kOptimGroup,
          kHf,
          "Linear warm-up steps (wins over ratio)",
          {},
          {},
          kPartly,
          "an integer; transformers 5's fraction form (0.1 = a ratio) is refused: use "
          "--warmup_ratio"},
    Field{"warmup_ratio",
          &A::warmup_ratio,
          kOptimGroup,
          kHf,
          "Warm-up as a fraction of all steps (ceil(ratio x steps))",
          {},
          {},
          FlagSupport::Works,
          "transformers 4's name (transformers 5: --warmup_steps below 1)"},
    Field{"optim",
          &A::optim,
          kOptimGroup,
          kHf,
          "adamw_torch or adamw_torch_fused: torch.optim.AdamW's update",
          {},
          kOptimizers,
          kPartly,
          "both names are torch.optim.AdamW's update (the fused kernel computes the same); "
          "every other optimizer is refused"},
    Field{"weight_decay", &A::weight_decay, kOptimGroup, kHf, "AdamW decoupled weight decay"},
    Field{"adam_beta1", &A::adam_beta1, kOptimGroup, kHf, "AdamW beta1"},
    Field{"adam_beta2", &A::adam_beta2, kOptimGroup, kHf, "AdamW beta2"},
    Field{"adam_epsilon", &A::adam_epsilon, kOptimGroup, kHf, "AdamW epsilon"},
    Field{"max_grad_norm", &A::max_grad_norm, kOptimGroup, kHf,
          "Clip the gradient norm to this (0: no clipping)"},
    Field{"seed", &A::seed, kOptimGroup, kHf,
          "Random seed of training (LoRA initialisation, batch order, dropout)"},
    Field{"bf16", &A::bf16, kOptimGroup, kHf,
          "bf16 compute as torch's CPU autocast: GEMM operands (linear layers, LoRA, LM head) in "
          "bf16 with fp32 accumulation through oneDNN; attention, norms, loss and optimizer fp32. "
          "Without oneDNN or AVX512_BF16/AMX: fp32, with a notice"},
    Field{"profile", &A::profile, kOptimGroup, kOurs,
          "Time every backend op of the steady-state steps (all but the first) by phase and "
          "projection; printed at the end and written as the summary's \"profile\" in "
          "metrics.jsonl"},
    Field{"gradient_checkpointing", &A::gradient_checkpointing, kOptimGroup, kHf,
          "Recompute activations in the backward pass to save memory"},
    Field{"checkpoint_granularity",
          &A::checkpoint_granularity,
          kOptimGroup,
          kOurs,
          "With --gradient_checkpointing: selective keeps each layer's attention output and "
          "log-sum-exp (tokens x (heads*head_dim + heads) fp32 a layer) and recomputes the "
          "rest; full recomputes everything (least memory)",
          {},
          kCheckpointGranularities},
    Field{"dataloader_drop_last", &A::dataloader_drop_last, kOptimGroup, kHf,
          "Drop the last incomplete batch"},
    Field{"overwrite_output_dir",
          &A::overwrite_output_dir,
          kOptimGroup,
          kHf,
          "Allow an --output_dir that already holds checkpoints (they are removed)",
          {},
          {},
          FlagSupport::Works,
          "transformers 4's name; without it a used --output_dir is refused"},
    Field{"resume_from_checkpoint", &A::resume_from_checkpoint, kOptimGroup, kHf,
          "Checkpoint folder to resume from, or 'latest'"},

    Field{"logging_strategy",
          &A::logging_strategy,
          kScheduleGroup,
          kHf,
          "When to log: steps (every --logging_steps), epoch (each epoch's end and the last "
          "step) or no (only the summary line)",
          {},
          kStrategies},
    Field{"logging_steps", &A::logging_steps, kScheduleGroup, kHf,
          "With --logging_strategy steps: log every N optimizer steps"},
    Field{"eval_strategy", &A::eval_strategy, kScheduleGroup, kHf,
          "When to evaluate on the eval rows: steps (before the first step, every --eval_steps "
          "and at the end), epoch (before, at each epoch's end and at the end) or no (never)",
          ",--evaluation_strategy", kStrategies, FlagSupport::Works,
          "default steps, not transformers' no; steps and epoch also evaluate the base model "
          "before the first step and at the end (llama-lora's addition), so the default with "
          "--eval_steps 0 evaluates twice. --eval_steps 0 under steps never evaluates in "
          "between (transformers: every --logging_steps). --evaluation_strategy is "
          "transformers 4's name"},
    Field{"eval_steps", &A::eval_steps, kScheduleGroup, kHf,
          "With --eval_strategy steps: evaluate every N steps (0: only before and at the end)"},
    Field{"save_strategy",
          &A::save_strategy,
          kScheduleGroup,
          kHf,
          "When to save a checkpoint: steps (every --save_steps and at the end), epoch (each "
          "epoch's end and at the end) or no (none; the final adapter is still written)",
          {},
          kStrategies,
          kPartly,
          "the value best is refused: it needs metric_for_best_model, which llama-lora does not "
          "have. With no, SIGINT/SIGTERM save nothing either"},
    Field{"save_steps", &A::save_steps, kScheduleGroup, kHf,
          "With --save_strategy steps: save a checkpoint every N steps"},
    Field{"save_total_limit", &A::save_total_limit, kScheduleGroup, kHf,
          "Keep only the newest N checkpoints (0: keep all)"},
    Field{"report_to",
          &A::report_to,
          kScheduleGroup,
          kHf,
          "tensorboard (or all): also write every metrics.jsonl line as TensorBoard scalars "
          "(train/loss, eval/loss, ...) to --logging_dir; none: metrics.jsonl only. A comma list "
          "of these is accepted",
          {},
          {},
          kPartly,
          "tensorboard is the one integration llama-lora has, so all means tensorboard; any other "
          "name (wandb, mlflow, ...) is refused. A list is comma-separated (not space-separated "
          "as transformers' argparse takes it)"},
    Field{"logging_dir",
          &A::logging_dir,
          kScheduleGroup,
          kHf,
          "Folder of the TensorBoard event files (default: <output_dir>/runs/"
          "<Mon><DD>_<HH>-<MM>-<SS>_<host>, as transformers; a resume keeps its run's)",
          {},
          {},
          FlagSupport::Works,
          "transformers 4's name"},

    Field{"lora_r",
          &A::lora_r,
          kLoraGroup,
          kPeft,
          "LoRA rank",
          {},
          {},
          FlagSupport::Works,
          "peft's r"},
    Field{"lora_alpha", &A::lora_alpha, kLoraGroup, kPeft,
          "LoRA alpha (scale alpha/r, or alpha/sqrt(r))"},
    Field{"lora_dropout", &A::lora_dropout, kLoraGroup, kPeft, "Dropout on the LoRA input"},
    Field{"target_modules", &A::target_modules, kLoraGroup, kPeft,
          "Comma list of q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj, or all-linear"},
    Field{"use_rslora", &A::use_rslora, kLoraGroup, kPeft, "Rank-stabilised scale alpha/sqrt(r)"},
    Field{"lora_rank_pattern", &A::lora_rank_pattern, kLoraGroup, kPeft,
          "peft rank_pattern: JSON {module key regex: r}, e.g. '{\"q_proj\": 4}'"},
    Field{"lora_alpha_pattern", &A::lora_alpha_pattern, kLoraGroup, kPeft,
          "peft alpha_pattern: JSON {module key regex: alpha}"},
    Field{"layers_to_transform", &A::layers_to_transform, kLoraGroup, kPeft,
          "peft layers_to_transform: comma list of layer indices (default: every layer)"},

    Field{"tensor_parallel_size", &A::tensor_parallel_size, kParallelGroup, kNeuron,
          "Tensor-parallel degree; the data-parallel degree is the number of processes "
          "(mpirun -np) / this"},
    Field{"ddp_timeout", &A::ddp_timeout, kParallelGroup, kHf,
          "Seconds a collective waits for the other ranks before the run aborts"},

    Field{"do_train",
          &A::do_train,
          kCompatGroup,
          kHf,
          "Must be true: `llama-lora train` always trains (for evaluation alone: llama-lora eval)",
          {},
          {},
          kPartly,
          "False is refused: transformers' scripts then skip trainer.train(), and a train "
          "command that trains nothing would only hide the mistake; `llama-lora eval` "
          "evaluates. Default true (transformers': false, which its Trainer ignores)"},
    Field{"zero_1",
          &A::zero_1,
          kCompatGroup,
          kNeuron,
          "Accepted: every data-parallel rank keeps the whole (small) LoRA optimizer state",
          {},
          {},
          kNoEffect,
          "ZeRO-1 only shards the optimizer state across data-parallel ranks, which changes no "
          "number; LoRA's state is small, so every rank keeps all of it"},
    Field{"remove_unused_columns",
          &A::remove_unused_columns,
          kCompatGroup,
          kHf,
          "Accepted: only the --preset's fields of a row are ever read",
          {},
          {},
          kNoEffect,
          "the preset reads its own fields and nothing else, whatever the value"},
};

template <typename T>
std::string_view kind_of() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  if constexpr (std::is_same_v<T, int64_t>) return "an integer";
  if constexpr (std::is_same_v<T, uint64_t>) return "a non-negative integer";
  if constexpr (std::is_same_v<T, double>) return "a finite number";
  return "text";
}

// The whole of `text` as a T (finite for floating point), or nothing.
template <typename T>
std::optional<T> parse_number(std::string_view text) {
  if (text.size() > 1 && text.front() == '+' && text[1] != '-') text.remove_prefix(1);
  if (text.empty()) return std::nullopt;
  T value{};
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc{} || stop != end) return std::nullopt;
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(value)) return std::nullopt;
  }
  return value;
}

}  // namespace

std::span<const Field> training_fields() {
  return kFields;
}

const Field* find_field(std::string_view name) {
  for (const Field& field : kFields) {
    if (field.name == name) return &field;
  }
  return nullptr;
}

bool is_bool_field(const Field& field) {
  return std::holds_alternative<bool TrainingArgs::*>(field.member);
}

std::string to_lower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

std::optional<bool> parse_bool(std::string_view text) {
  const std::string value = to_lower(text);
  if (value == "true" || value == "t" || value == "yes" || value == "y" || value == "1" ||
      value == "on") {
    return true;
  }
  if (value == "false" || value == "f" || value == "no" || value == "n" || value == "0" ||
      value == "off") {
    return false;
  }
  return std::nullopt;
}

std::string join_names(std::span<const std::string_view> names) {
  std::string list;
  for (const std::string_view name : names) list += (list.empty() ? "" : ", ") + std::string(name);
  return list;
}

std::string assign_text(TrainingArgs& args, const Field& field, std::string_view text) {
  return std::visit(
      [&](auto member) -> std::string {
        using T = std::remove_reference_t<decltype(args.*member)>;
        if constexpr (std::is_same_v<T, std::string>) {
          if (!field.choices.empty()) {
            bool known = false;
            for (const std::string_view choice : field.choices) known = known || choice == text;
            if (!known) {
              return std::string(text) +
                     " is not supported (supported: " + join_names(field.choices) + ")";
            }
          }
          args.*member = std::string(text);
          return {};
        } else {
          std::optional<T> value;
          if constexpr (std::is_same_v<T, bool>) {
            value = parse_bool(text);
          } else {
            value = parse_number<T>(text);
          }
          if (!value) {
            return "expected " + std::string(kind_of<T>()) + ", got '" + std::string(text) + "'";
          }
          args.*member = *value;
          return {};
        }
      },
      field.member);
}

std::string field_text(const TrainingArgs& args, const Field& field) {
  return std::visit(
      [&](auto member) -> std::string {
        const auto& value = args.*member;
        if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::string>) {
          return value;
        } else {
          return nlohmann::json(value).dump();
        }
      },
      field.member);
}

}  // namespace ll
