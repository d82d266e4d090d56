// See training_args.h. One table, kFields, lists every setting once (its flag name, help and
// TrainingArgs member); the flags, recipe files and to_json() all walk it, so they cannot
// drift apart. Values from flags and from recipe files go through the same text converters.
#include "train/training_args.h"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <type_traits>
#include <variant>

#include "core/error.h"
#include "core/file.h"
#include "data/presets.h"
#include "model/lora.h"
#include "train/lr_schedule.h"
#include "train/tensorboard.h"

namespace ll {

namespace {

using Member = std::variant<std::string TrainingArgs::*, int64_t TrainingArgs::*,
                            uint64_t TrainingArgs::*, double TrainingArgs::*, bool TrainingArgs::*>;

struct Field {
  std::string_view name;  // the HF name: the flag without dashes, the recipe and JSON key
  Member member;
  std::string_view group;  // section of --help
  std::string_view help;
  std::string_view aliases = {};  // more flag names, CLI11 style: ",--model_id,..."
};

constexpr std::string_view kDataGroup = "Model and data";
constexpr std::string_view kOptimGroup = "Optimisation (transformers.TrainingArguments)";
constexpr std::string_view kLoraGroup = "LoRA (peft.LoraConfig)";
constexpr std::string_view kParallelGroup = "Parallelism";
constexpr std::string_view kCompatGroup = "Accepted for HF launch scripts (no effect)";

using A = TrainingArgs;
const std::array kFields = {
    Field{"model", &A::model, kDataGroup, "Hugging Face model folder (config.json, *.safetensors)",
          ",--model_id,--model_name_or_path"},
    Field{"tokenizer", &A::tokenizer, kDataGroup,
          "Folder with tokenizer.json and its chat template (default: the model's)"},
    Field{"data", &A::data, kDataGroup, "Dataset file: JSON lines or a JSON array",
          ",--dataset_path"},
    Field{"preset", &A::preset, kDataGroup,
          "How a row becomes an example: sql, messages, alpaca or text"},
    Field{"max_seq_length", &A::max_seq_length, kDataGroup, "Tokens per training sequence"},
    Field{"packing", &A::packing, kDataGroup, "Concatenate examples into full-length sequences"},
    Field{"completion_only_loss", &A::completion_only_loss, kDataGroup,
          "Loss on the assistant's tokens only"},
    Field{"skip_bad_rows", &A::skip_bad_rows, kDataGroup,
          "Skip (and count) rows that do not fit the preset instead of failing"},
    Field{"train_rows", &A::train_rows, kDataGroup, "Training rows after the shuffle"},
    Field{"eval_rows", &A::eval_rows, kDataGroup, "Evaluation rows after the training rows"},
    Field{"data_seed", &A::data_seed, kDataGroup, "Seed of the dataset shuffle before the split"},

    Field{"output_dir", &A::output_dir, kOptimGroup, "Folder for checkpoints and logs"},
    Field{"per_device_train_batch_size", &A::per_device_train_batch_size, kOptimGroup,
          "Sequences per micro-batch"},
    Field{"per_device_eval_batch_size", &A::per_device_eval_batch_size, kOptimGroup,
          "Sequences per evaluation batch"},
    Field{"gradient_accumulation_steps", &A::gradient_accumulation_steps, kOptimGroup,
          "Micro-batches per optimizer step"},
    Field{"max_steps", &A::max_steps, kOptimGroup,
          "Optimizer steps; > 0 overrides --num_train_epochs"},
    Field{"num_train_epochs", &A::num_train_epochs, kOptimGroup, "Passes over the training set"},
    Field{"learning_rate", &A::learning_rate, kOptimGroup, "Peak AdamW learning rate"},
    Field{"lr_scheduler_type", &A::lr_scheduler_type, kOptimGroup,
          "linear, cosine, constant or constant_with_warmup"},
    Field{"warmup_steps", &A::warmup_steps, kOptimGroup, "Linear warm-up steps (wins over ratio)"},
    Field{"warmup_ratio", &A::warmup_ratio, kOptimGroup, "Warm-up as a fraction of all steps"},
    Field{"weight_decay", &A::weight_decay, kOptimGroup, "AdamW decoupled weight decay"},
    Field{"adam_beta1", &A::adam_beta1, kOptimGroup, "AdamW beta1"},
    Field{"adam_beta2", &A::adam_beta2, kOptimGroup, "AdamW beta2"},
    Field{"adam_epsilon", &A::adam_epsilon, kOptimGroup, "AdamW epsilon"},
    Field{"max_grad_norm", &A::max_grad_norm, kOptimGroup,
          "Clip the gradient norm to this (0: no clipping)"},
    Field{"seed", &A::seed, kOptimGroup, "Random seed of training (LoRA initialisation, dropout)"},
    Field{"logging_steps", &A::logging_steps, kOptimGroup, "Log every N optimizer steps"},
    Field{"report_to", &A::report_to, kOptimGroup,
          "tensorboard (or all): also write every metrics.jsonl line as TensorBoard scalars "
          "(train/loss, eval/loss, ...) to --logging_dir; none: metrics.jsonl only"},
    Field{"logging_dir", &A::logging_dir, kOptimGroup,
          "Folder of the TensorBoard event files (default: <output_dir>/runs/"
          "<Mon><DD>_<HH>-<MM>-<SS>_<host>, as transformers; a resume keeps its run's)"},
    Field{"save_steps", &A::save_steps, kOptimGroup, "Save a checkpoint every N steps"},
    Field{"eval_steps", &A::eval_steps, kOptimGroup, "Evaluate every N steps (0: never)"},
    Field{"save_total_limit", &A::save_total_limit, kOptimGroup,
          "Keep only the newest N checkpoints (0: keep all)"},
    Field{"bf16", &A::bf16, kOptimGroup,
          "bf16 compute as torch's CPU autocast: GEMM operands (linear layers, LoRA, LM head) in "
          "bf16 with fp32 accumulation through oneDNN; attention, norms, loss and optimizer fp32. "
          "Without oneDNN or AVX512_BF16/AMX: fp32, with a notice"},
    Field{"profile", &A::profile, kOptimGroup,
          "Time every backend op of the steady-state steps (all but the first) by phase and "
          "projection; printed at the end and written as the summary's \"profile\" in "
          "metrics.jsonl"},
    Field{"gradient_checkpointing", &A::gradient_checkpointing, kOptimGroup,
          "Recompute activations in the backward pass to save memory"},
    Field{"checkpoint_granularity", &A::checkpoint_granularity, kOptimGroup,
          "With --gradient_checkpointing: selective keeps each layer's attention output and "
          "log-sum-exp (tokens x (heads*head_dim + heads) fp32 a layer) and recomputes the "
          "rest; full recomputes everything (least memory)"},
    Field{"dataloader_drop_last", &A::dataloader_drop_last, kOptimGroup,
          "Drop the last incomplete batch"},
    Field{"overwrite_output_dir", &A::overwrite_output_dir, kOptimGroup,
          "Allow an --output_dir that already holds checkpoints"},
    Field{"resume_from_checkpoint", &A::resume_from_checkpoint, kOptimGroup,
          "Checkpoint folder to resume from, or 'latest'"},

    Field{"lora_r", &A::lora_r, kLoraGroup, "LoRA rank"},
    Field{"lora_alpha", &A::lora_alpha, kLoraGroup, "LoRA alpha (scale alpha/r, or alpha/sqrt(r))"},
    Field{"lora_dropout", &A::lora_dropout, kLoraGroup, "Dropout on the LoRA input"},
    Field{"target_modules", &A::target_modules, kLoraGroup,
          "Comma list of q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj, or all-linear"},
    Field{"use_rslora", &A::use_rslora, kLoraGroup, "Rank-stabilised scale alpha/sqrt(r)"},

    Field{"tensor_parallel_size", &A::tensor_parallel_size, kParallelGroup,
          "Tensor-parallel degree; the data-parallel degree is the number of processes "
          "(mpirun -np) / this"},
    Field{"ddp_timeout", &A::ddp_timeout, kParallelGroup,
          "Seconds a collective waits for the other ranks before the run aborts"},
};

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

// HfArgumentParser's string_to_bool (yes/true/t/y/1, no/false/f/n/0), plus on/off, any case.
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

template <typename T>
std::string_view kind_of() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  if constexpr (std::is_same_v<T, int64_t>) return "an integer";
  if constexpr (std::is_same_v<T, uint64_t>) return "a non-negative integer";
  if constexpr (std::is_same_v<T, double>) return "a finite number";
  return "text";
}

// Stores `text` in the field of `args`; returns "" or what is wrong with it.
std::string assign_text(TrainingArgs& args, const Field& field, std::string_view text) {
  return std::visit(
      [&](auto member) -> std::string {
        using T = std::remove_reference_t<decltype(args.*member)>;
        if constexpr (std::is_same_v<T, std::string>) {
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

// The field's value as text, for --help's defaults.
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

std::string format_number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

// ll::Error's message without its "[origin] " prefix, to re-raise it under another origin.
std::string without_origin(const Error& error) {
  const std::string_view what = error.what();
  const size_t prefix = error.origin().size() + 3;
  return std::string(what.size() >= prefix ? what.substr(prefix) : what);
}

void add_field_flag(CLI::App& command, TrainingArgs& args, const Field& field) {
  const std::string flag = "--" + std::string(field.name);
  const bool is_bool = is_bool_field(field);
  auto* option = command.add_option(
      flag + std::string(field.aliases),
      [&args, &field, flag, is_bool](const CLI::results_t& results) {
        // A bare boolean (`--bf16`, no value) arrives as "" and means true.
        std::string text = results.empty() ? std::string() : results.back();
        if (is_bool && text.empty()) text = "true";
        const std::string problem = assign_text(args, field, text);
        if (!problem.empty()) fail("train", flag + ": " + problem);
        return true;
      },
      std::string(field.help));
  // HfArgumentParser (argparse) keeps the last of repeated flags: `launch.sh "$@"` overrides.
  option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  option->group(std::string(field.group));
  if (is_bool) {
    // `--bf16` alone or `--bf16 VALUE`. No default_str: CLI11 would hand it to a bare flag.
    option->expected(0, 1)->type_name("[BOOL]");
    option->description(std::string(field.help) + " (default: " + field_text(args, field) + ")");
  } else {
    std::visit(
        [&](auto member) {
          using T = std::remove_reference_t<decltype(args.*member)>;
          option->type_name(std::is_same_v<T, std::string> ? "TEXT"
                            : std::is_same_v<T, double>    ? "FLOAT"
                                                           : "INT");
        },
        field.member);
    option->default_str(field_text(args, field));
  }
}

// HF flags that seed-style scripts pass and that change nothing here; values that would
// change something are errors rather than silently ignored.
void add_compat_flags(CLI::App& command) {
  for (const char* name : {"--do_train", "--zero_1", "--remove_unused_columns"}) {
    const std::string flag = name;
    command
        .add_option(
            flag,
            [flag](const CLI::results_t& results) {
              const std::string text = results.empty() ? "" : results.back();
              if (!text.empty() && !parse_bool(text)) {
                fail("train", flag + ": expected true or false, got '" + text + "'");
              }
              return true;
            },
            "Accepted and ignored")
        ->expected(0, 1)
        ->type_name("[BOOL]")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
        ->group(std::string(kCompatGroup));
  }
  struct Choice {
    const char* flag;
    std::vector<std::string> accepted;
    const char* why;
  };
  const std::vector<Choice> choices = {
      {"--save_strategy", {"steps"}, "checkpoints are saved every --save_steps steps"},
      {"--logging_strategy", {"steps"}, "metrics are logged every --logging_steps steps"},
      {"--optim",
       {"adamw_torch", "adamw_hf", "adamw_torch_fused"},
       "the optimizer is AdamW with torch.optim.AdamW's semantics"},
  };
  for (const Choice& choice : choices) {
    std::string list;
    for (const auto& value : choice.accepted) list += (list.empty() ? "" : ", ") + value;
    const std::string flag = choice.flag;
    command
        .add_option(
            flag,
            [flag, choice, list](const CLI::results_t& results) -> bool {
              const std::string& text = results.back();
              for (const auto& value : choice.accepted) {
                if (text == value) return true;
              }
              fail("train", flag + " " + text + " is not supported: " + choice.why +
                                " (accepted: " + list + ")");
            },
            "Accepted: " + list)
        ->type_name("TEXT")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
        ->group(std::string(kCompatGroup));
  }
}

// The seed, setting by setting: 01__launch_training.sh's flags, finetune_llama.py's
// LoraConfig and NeuronSFTConfig, and its data split (SEED.md step 1).
void apply_sql_recipe(TrainingArgs& args) {
  // Launch flags. Its --tensor_parallel_size 8 is left to the launch (mpirun -np 32 ...
  // --tensor_parallel_size 8): it depends on the model and the number of processes.
  args.bf16 = true;
  args.per_device_train_batch_size = 8;
  args.gradient_accumulation_steps = 1;
  args.gradient_checkpointing = true;
  args.max_steps = 250;
  args.logging_steps = 10;
  args.learning_rate = 1e-5;
  args.dataloader_drop_last = true;
  // The seed keeps save_steps 500 and gets its one checkpoint, checkpoint-250, from the
  // save transformers makes at the last step; 250 gives that same checkpoint directly.
  args.save_steps = 250;
  args.eval_steps = 0;  // the seed passes an eval set but never evaluates (eval_strategy no)
  // LoraConfig(r=8, lora_alpha=64, lora_dropout=0.05, all seven projections, use_rslora).
  args.lora_r = 8;
  args.lora_alpha = 64.0;
  args.lora_dropout = 0.05;
  args.target_modules = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj";
  args.use_rslora = true;
  // NeuronSFTConfig(max_seq_length=1024, packing=True): loss on every token.
  args.max_seq_length = 1024;
  args.packing = true;
  args.completion_only_loss = false;
  // b-mc2/sql-create-context shuffled with seed 23: rows 0..49999 train, 50000..50499 eval.
  args.preset = "sql";
  args.train_rows = 50000;
  args.eval_rows = 500;
  args.data_seed = 23;
}

bool names_recipe_file(const std::string& spec) {
  const std::string extension = to_lower(fs::path(spec).extension().string());
  if (extension == ".yaml" || extension == ".yml" || extension == ".json") return true;
  std::error_code error;
  return fs::is_regular_file(spec, error);
}

[[noreturn]] void fail_key(const std::string& path, std::string_view key, std::string_view what) {
  fail("train", path + ": key '" + std::string(key) + "': " + std::string(what));
}

const Field& recipe_field(const std::string& path, std::string_view key) {
  const Field* field = find_field(key);
  if (!field) {
    fail("train", path + ": unknown key '" + std::string(key) +
                      "' (keys are the flag names without dashes, e.g. learning_rate)");
  }
  return *field;
}

void set_from_recipe(TrainingArgs& args, const std::string& path, const Field& field,
                     std::string_view text) {
  const std::string problem = assign_text(args, field, text);
  if (!problem.empty()) fail_key(path, field.name, problem);
}

void load_json_recipe(TrainingArgs& args, const std::string& path, const std::string& text) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& error) {
    fail("train", path + ": not valid JSON: " + error.what());
  }
  if (!root.is_object()) {
    fail("train", path + ": expected an object of settings, e.g. {\"learning_rate\": 1e-05}");
  }
  for (const auto& [key, value] : root.items()) {
    const Field& field = recipe_field(path, key);
    // JSON has types, so they must match: numbers for numbers, true/false for booleans.
    std::string value_text;
    const bool is_string = std::holds_alternative<std::string TrainingArgs::*>(field.member);
    if (is_string && value.is_string()) {
      value_text = value.get<std::string>();
    } else if (is_string && field.name == "target_modules" && value.is_array()) {
      for (const auto& item : value) {
        if (!item.is_string()) fail_key(path, key, "expected a list of module names");
        value_text += (value_text.empty() ? "" : ",") + item.get<std::string>();
      }
    } else if (is_bool_field(field) && value.is_boolean()) {
      value_text = value.get<bool>() ? "true" : "false";
    } else if (!is_string && !is_bool_field(field) && value.is_number()) {
      value_text = value.dump();
    } else {
      const std::string_view wanted = is_string              ? "a string"
                                      : is_bool_field(field) ? "true or false"
                                                             : "a number";
      fail_key(path, key, "expected " + std::string(wanted) + ", got " + value.dump());
    }
    set_from_recipe(args, path, field, value_text);
  }
}

void load_yaml_recipe(TrainingArgs& args, const std::string& path, const std::string& text) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& error) {
    fail("train", path + ": not valid YAML: " + error.what());
  }
  if (!root.IsMap())
    fail("train", path + ": expected a mapping of settings, e.g. learning_rate: 1e-5");
  for (const auto& entry : root) {
    if (!entry.first.IsScalar()) fail("train", path + ": keys must be flag names");
    const std::string key = entry.first.Scalar();
    const Field& field = recipe_field(path, key);
    const YAML::Node& value = entry.second;
    // YAML scalars are read as text and converted like flag values (so `bf16: yes` works).
    if (value.IsScalar()) {
      set_from_recipe(args, path, field, value.Scalar());
    } else if (value.IsSequence() && field.name == "target_modules") {
      std::string list;
      for (const auto& item : value) {
        if (!item.IsScalar()) fail_key(path, key, "expected a list of module names");
        list += (list.empty() ? "" : ",") + item.Scalar();
      }
      set_from_recipe(args, path, field, list);
    } else if (value.IsNull()) {
      fail_key(path, key, "has no value");
    } else {
      fail_key(path, key,
               value.IsSequence() ? "expected one value, got a list"
                                  : "expected one value, got a mapping");
    }
  }
}

void require(bool ok, const std::string& what) {
  if (!ok) fail("train", what);
}

void require_at_least(std::string_view flag, int64_t value, int64_t minimum) {
  require(value >= minimum, "--" + std::string(flag) + " must be at least " +
                                std::to_string(minimum) + ", got " + std::to_string(value));
}

}  // namespace

nlohmann::json TrainingArgs::to_json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const Field& field : kFields) {
    std::visit([&](auto member) { out[std::string(field.name)] = this->*member; }, field.member);
  }
  return out;
}

std::vector<std::string_view> recipe_names() {
  return {"sql"};
}

void apply_recipe(TrainingArgs& args, const std::string& name) {
  if (name == "sql") {
    apply_sql_recipe(args);
    return;
  }
  if (names_recipe_file(name)) {
    load_recipe_file(args, name);
    return;
  }
  std::string known;
  for (const auto recipe : recipe_names())
    known += (known.empty() ? "" : ", ") + std::string(recipe);
  fail("train", "unknown recipe '" + name + "' (known: " + known +
                    "; or a recipe file ending .yaml, .yml or .json)");
}

void load_recipe_file(TrainingArgs& args, const std::string& path) {
  const std::string text = read_file(path);
  // Into a copy first: a file with an error changes nothing.
  TrainingArgs loaded = args;
  if (to_lower(fs::path(path).extension().string()) == ".json") {
    load_json_recipe(loaded, path, text);
  } else {
    load_yaml_recipe(loaded, path, text);
  }
  args = std::move(loaded);
}

void add_training_flags(CLI::App& command, TrainingArgs& args) {
  // trigger_on_parse: the recipe is applied the moment --recipe is read, while the other
  // flags store their values only after the whole line is parsed (and are declared after it),
  // so flags override the recipe wherever --recipe stands. Repeated, recipes apply in order.
  command
      .add_option(
          "--recipe",
          [&args](const CLI::results_t& results) {
            apply_recipe(args, results.back());
            return true;
          },
          "Start from a recipe: sql (the seed's settings) or a .yaml/.json file of flag: value; "
          "flags given on the line override it")
      ->type_name("NAME|FILE")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->trigger_on_parse()
      ->group(std::string(kDataGroup));
  for (const Field& field : kFields) add_field_flag(command, args, field);
  add_compat_flags(command);
}

void validate_training_args(const TrainingArgs& args) {
  require(!args.model.empty(), "--model is required: a Hugging Face model folder");
  require(!args.data.empty(), "--data is required: a JSON lines or JSON dataset file");
  require(!args.output_dir.empty(), "--output_dir is required: where checkpoints are written");

  try {
    parse_preset(args.preset);
  } catch (const Error& error) {
    fail("train", "--preset: " + without_origin(error));
  }
  require_at_least("max_seq_length", args.max_seq_length, 2);  // one next-token target
  require(args.max_seq_length <= std::numeric_limits<uint32_t>::max(),
          "--max_seq_length must be below 2^32, got " + std::to_string(args.max_seq_length));
  require_at_least("train_rows", args.train_rows, 1);
  reports_to_tensorboard(args.report_to);  // throws on a name it does not know
  require_at_least("eval_rows", args.eval_rows, 0);

  require_at_least("per_device_train_batch_size", args.per_device_train_batch_size, 1);
  require_at_least("per_device_eval_batch_size", args.per_device_eval_batch_size, 1);
  require_at_least("gradient_accumulation_steps", args.gradient_accumulation_steps, 1);
  require(args.max_steps > 0 || args.num_train_epochs > 0,
          "nothing to train: --max_steps is " + std::to_string(args.max_steps) +
              " and --num_train_epochs is " + format_number(args.num_train_epochs) +
              " (set one of them above 0)");
  require(args.num_train_epochs >= 0,
          "--num_train_epochs must be at least 0, got " + format_number(args.num_train_epochs));
  // Written so that NaN fails too.
  require(args.learning_rate >= 0,
          "--learning_rate must be at least 0, got " + format_number(args.learning_rate));
  try {
    parse_lr_schedule(args.lr_scheduler_type);
  } catch (const Error&) {
    fail("train", "--lr_scheduler_type '" + args.lr_scheduler_type +
                      "' is not supported (linear, cosine, constant, constant_with_warmup)");
  }
  require(args.checkpoint_granularity == "selective" || args.checkpoint_granularity == "full",
          "--checkpoint_granularity '" + args.checkpoint_granularity +
              "' is not supported (selective, full)");
  require_at_least("warmup_steps", args.warmup_steps, 0);
  require(args.warmup_ratio >= 0 && args.warmup_ratio <= 1,
          "--warmup_ratio must be in [0, 1], got " + format_number(args.warmup_ratio));
  require(args.weight_decay >= 0,
          "--weight_decay must be at least 0, got " + format_number(args.weight_decay));
  require(args.adam_beta1 >= 0 && args.adam_beta1 < 1,
          "--adam_beta1 must be in [0, 1), got " + format_number(args.adam_beta1));
  require(args.adam_beta2 >= 0 && args.adam_beta2 < 1,
          "--adam_beta2 must be in [0, 1), got " + format_number(args.adam_beta2));
  // 0 would divide 0 by 0 where a gradient has always been zero.
  require(args.adam_epsilon > 0,
          "--adam_epsilon must be above 0, got " + format_number(args.adam_epsilon));
  require(args.max_grad_norm >= 0, "--max_grad_norm must be at least 0 (0: no clipping), got " +
                                       format_number(args.max_grad_norm));
  require_at_least("logging_steps", args.logging_steps, 1);
  require_at_least("save_steps", args.save_steps, 1);
  require_at_least("eval_steps", args.eval_steps, 0);
  require_at_least("save_total_limit", args.save_total_limit, 0);

  require_at_least("lora_r", args.lora_r, 1);
  require(args.lora_alpha > 0,
          "--lora_alpha must be above 0, got " + format_number(args.lora_alpha));
  require(args.lora_dropout >= 0 && args.lora_dropout < 1,
          "--lora_dropout must be in [0, 1), got " + format_number(args.lora_dropout));
  std::array<bool, kLoraTargetCount> targets{};
  try {
    targets = parse_lora_targets(args.target_modules);
  } catch (const Error& error) {
    fail("train", "--target_modules: " + without_origin(error));
  }
  bool any_target = false;
  for (const bool target : targets) any_target = any_target || target;
  require(any_target, "--target_modules names no module: '" + args.target_modules + "'");

  require_at_least("tensor_parallel_size", args.tensor_parallel_size, 1);
  require(args.ddp_timeout > 0,
          "--ddp_timeout must be positive, got " + format_number(args.ddp_timeout));
}

}  // namespace ll
