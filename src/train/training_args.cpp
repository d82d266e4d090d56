// See training_args.h. The settings are training_fields.h's table: this file makes them flags
// and checks them; training_recipes.cpp reads recipes, training_flags_doc.cpp documents them.
#include "train/training_args.h"

#include <CLI/CLI.hpp>
#include <array>
#include <limits>
#include <type_traits>
#include <variant>

#include "core/error.h"
#include "core/text.h"
#include "data/presets.h"
#include "model/lora.h"
#include "train/lora_args.h"
#include "train/lr_schedule.h"
#include "train/tensorboard.h"
#include "train/training_fields.h"

namespace ll {

namespace {

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
  for (const Field& field : training_fields()) {
    std::visit([&](auto member) { out[std::string(field.name)] = this->*member; }, field.member);
  }
  return out;
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
          std::string(kRecipeHelp))
      ->type_name("NAME|FILE")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->trigger_on_parse()
      ->group(std::string(training_fields().front().group));
  for (const Field& field : training_fields()) add_field_flag(command, args, field);
}

void validate_training_args(const TrainingArgs& args) {
  // Text settings with a list of values, set in code rather than through a flag.
  for (const Field& field : training_fields()) {
    if (field.choices.empty()) continue;
    TrainingArgs copy = args;
    const std::string problem = assign_text(copy, field, field_text(args, field));
    require(problem.empty(), "--" + std::string(field.name) + ": " + problem);
  }
  require(args.do_train,
          "--do_train False: `llama-lora train` always trains (transformers' scripts skip "
          "training then; to evaluate a model or adapter use `llama-lora eval`)");
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
  require_at_least("warmup_steps", args.warmup_steps, 0);
  require(args.warmup_ratio >= 0 && args.warmup_ratio <= 1,
          "--warmup_ratio must be in [0, 1], got " + format_number(args.warmup_ratio));
  // transformers' constant ignores a warm-up; here a setting that would do nothing is refused.
  const LrSchedule schedule = parse_lr_schedule(args.lr_scheduler_type);
  require(lr_schedule_warms_up(schedule) || (args.warmup_steps == 0 && args.warmup_ratio == 0),
          "--lr_scheduler_type " + args.lr_scheduler_type + " has no warm-up, so --warmup_steps " +
              std::to_string(args.warmup_steps) + " / --warmup_ratio " +
              format_number(args.warmup_ratio) +
              " would do nothing (for a warm-up: --lr_scheduler_type constant_with_warmup)");
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

  lora_config_from_args(args);  // the LoRA flags (train/lora_args.h)

  require_at_least("tensor_parallel_size", args.tensor_parallel_size, 1);
  require(args.ddp_timeout > 0,
          "--ddp_timeout must be positive, got " + format_number(args.ddp_timeout));
}

}  // namespace ll
