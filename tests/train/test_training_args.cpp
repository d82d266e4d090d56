// `train`'s settings: the seed's launch flags parse as they are, booleans take HF's forms,
// flags override a recipe wherever --recipe stands, recipe files (YAML, JSON) are checked
// key by key, and validation names the bad flag. The seed's values come from its
// 01__launch_training.sh and finetune_llama.py (SEED.md step 1).
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "test_util.h"
#include "train/training_args.h"
#include "train/training_fields.h"

namespace ll {
namespace {

// Parses `argv` as `llama-lora train ARGV...` would (a `train` subcommand of an app).
TrainingArgs parse_train(const std::vector<std::string>& argv, TrainingArgs args = {}) {
  CLI::App app{"test"};
  auto* train = app.add_subcommand("train");
  add_training_flags(*train, args);
  std::vector<std::string> reversed = {argv.rbegin(), argv.rend()};  // CLI11 wants it reversed
  reversed.push_back("train");
  app.parse(reversed);
  return args;
}

// The message of the ll::Error that `run` throws ("" and a test failure when none).
template <typename Run>
std::string error_of(Run run) {
  try {
    run();
  } catch (const Error& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected an ll::Error";
  return {};
}

#define EXPECT_ERROR(statement, text) \
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, text, error_of([&] { statement; }))

// The seed's 01__launch_training.sh, flag for flag (torchrun's own --nproc_per_node aside).
// clang-format off
const std::vector<std::string> kSeedFlags = {
    "--output_dir", "/shared/finetuned_models/20250220_170215",
    "--tensor_parallel_size", "8",
    "--bf16", "True",
    "--per_device_train_batch_size", "8",
    "--gradient_accumulation_steps", "1",
    "--gradient_checkpointing", "True",
    "--max_steps", "250",
    "--logging_steps", "10",
    "--learning_rate", "1e-5",
    "--dataloader_drop_last", "True",
};
// clang-format on

// Settings that validate: the sql recipe plus the paths it cannot know.
TrainingArgs valid_args() {
  TrainingArgs args;
  apply_recipe(args, "sql");
  args.model = "models/llama";
  args.data = "data/sql.jsonl";
  args.output_dir = "out";
  return args;
}

TEST(TrainingArgsFlags, SeedLaunchFlagsParse) {
  std::vector<std::string> argv = kSeedFlags;
  argv.insert(argv.end(), {"--model_id", "models/llama", "--data", "sql.jsonl"});
  const TrainingArgs args = parse_train(argv);
  EXPECT_EQ(args.output_dir, "/shared/finetuned_models/20250220_170215");
  EXPECT_EQ(args.tensor_parallel_size, 8);
  EXPECT_TRUE(args.bf16);
  EXPECT_EQ(args.per_device_train_batch_size, 8);
  EXPECT_EQ(args.gradient_accumulation_steps, 1);
  EXPECT_TRUE(args.gradient_checkpointing);
  EXPECT_EQ(args.max_steps, 250);
  EXPECT_EQ(args.logging_steps, 10);
  EXPECT_DOUBLE_EQ(args.learning_rate, 1e-5);
  EXPECT_TRUE(args.dataloader_drop_last);
  // Untouched settings keep transformers' defaults.
  EXPECT_EQ(args.lr_scheduler_type, "linear");
  EXPECT_EQ(args.seed, 42u);
  EXPECT_DOUBLE_EQ(args.max_grad_norm, 1.0);
  // Tensor parallelism 8 is valid here; the trainer checks it against the launch and model.
  EXPECT_NO_THROW(validate_training_args(args));
}

TEST(TrainingArgsFlags, HfCompatibilityFlagsAreAccepted) {
  std::vector<std::string> argv = kSeedFlags;
  argv.insert(argv.end(), {"--zero_1", "True", "--do_train", "--overwrite_output_dir", "True",
                           "--save_strategy", "steps", "--logging_strategy", "steps", "--report_to",
                           "none", "--optim", "adamw_torch", "--remove_unused_columns", "False"});
  const TrainingArgs args = parse_train(argv);
  EXPECT_TRUE(args.overwrite_output_dir);
  EXPECT_TRUE(args.zero_1);
  EXPECT_TRUE(args.do_train);
  EXPECT_FALSE(args.remove_unused_columns);
  EXPECT_EQ(args.optim, "adamw_torch");
  EXPECT_EQ(args.max_steps, 250);
  // Refusals: tests/train/test_training_flags.cpp.
}

TEST(TrainingArgsFlags, UnknownFlagIsCli11Error) {
  try {
    parse_train({"--max_steps", "5", "--zero_2", "True"});
    FAIL() << "an unknown flag parsed";
  } catch (const CLI::ParseError& error) {
    EXPECT_NE(std::string(error.what()).find("--zero_2"), std::string::npos) << error.what();
  }
}

TEST(TrainingArgsFlags, BooleanForms) {
  struct Case {
    std::vector<std::string> argv;
    bool expected;
  };
  const std::vector<Case> cases = {
      {{"--bf16"}, true},           {{"--bf16", "True"}, true},   {{"--bf16", "true"}, true},
      {{"--bf16", "1"}, true},      {{"--bf16", "yes"}, true},    {{"--bf16=True"}, true},
      {{"--bf16=False"}, false},    {{"--bf16", "false"}, false}, {{"--bf16", "0"}, false},
      {{"--bf16", "FALSE"}, false}, {{"--bf16", "no"}, false},
  };
  for (const Case& c : cases) {
    TrainingArgs start;
    start.bf16 = !c.expected;
    EXPECT_EQ(parse_train(c.argv, start).bf16, c.expected) << c.argv.back();
  }
  // A bare boolean before another flag takes no value from it.
  const TrainingArgs args = parse_train({"--packing", "--max_steps", "7", "--use_rslora"}, [] {
    TrainingArgs off;
    off.packing = false;
    return off;
  }());
  EXPECT_TRUE(args.packing);
  EXPECT_TRUE(args.use_rslora);
  EXPECT_EQ(args.max_steps, 7);
  EXPECT_ERROR(parse_train({"--bf16", "maybe"}),
               "[train] --bf16: expected true or false, got 'maybe'");
}

TEST(TrainingArgsFlags, NumbersAreStrict) {
  const TrainingArgs args =
      parse_train({"--learning_rate=2e-4", "--max_steps", "-1", "--num_train_epochs", "1.5",
                   "--data_seed", "123456789012", "--warmup_ratio", "+0.1"});
  EXPECT_DOUBLE_EQ(args.learning_rate, 2e-4);
  EXPECT_EQ(args.max_steps, -1);
  EXPECT_DOUBLE_EQ(args.num_train_epochs, 1.5);
  EXPECT_EQ(args.data_seed, 123456789012u);
  EXPECT_DOUBLE_EQ(args.warmup_ratio, 0.1);
  EXPECT_ERROR(parse_train({"--lora_r", "eight"}),
               "[train] --lora_r: expected an integer, got 'eight'");
  EXPECT_ERROR(parse_train({"--max_steps", "2.5"}),
               "[train] --max_steps: expected an integer, got '2.5'");
  EXPECT_ERROR(parse_train({"--seed", "-1"}),
               "[train] --seed: expected a non-negative integer, got '-1'");
  EXPECT_ERROR(parse_train({"--learning_rate", "nan"}),
               "[train] --learning_rate: expected a finite number, got 'nan'");
}

TEST(TrainingArgsFlags, AliasesAndLastValueWins) {
  EXPECT_EQ(parse_train({"--model", "a"}).model, "a");
  EXPECT_EQ(parse_train({"--model_id", "b"}).model, "b");
  EXPECT_EQ(parse_train({"--model_name_or_path", "c"}).model, "c");
  EXPECT_EQ(parse_train({"--data", "d.jsonl"}).data, "d.jsonl");
  EXPECT_EQ(parse_train({"--dataset_path", "e.jsonl"}).data, "e.jsonl");
  // argparse keeps the last of a repeated flag, so `launch.sh "$@"` can override its own.
  EXPECT_EQ(parse_train({"--model", "a", "--model_id", "b"}).model, "b");
  EXPECT_DOUBLE_EQ(
      parse_train({"--learning_rate", "1e-5", "--learning_rate", "3e-4"}).learning_rate, 3e-4);
}

TEST(TrainingArgsFlags, EveryFieldHasItsFlag) {
  // Each key of to_json() is a flag: set it to a value of its type and see it arrive.
  const nlohmann::json defaults = TrainingArgs{}.to_json();
  EXPECT_EQ(defaults.size(), 57u);
  for (const auto& [key, value] : defaults.items()) {
    std::string text = "7";
    nlohmann::json expected = 7;
    const Field* field = find_field(key);
    ASSERT_NE(field, nullptr) << key;
    if (!field->choices.empty()) {
      text = std::string(field->choices.back());  // a value of its list, not its default
      if (text == value) text = std::string(field->choices.front());
      expected = text;
    } else if (value.is_boolean()) {
      text = value.get<bool>() ? "false" : "true";
      expected = !value.get<bool>();
    } else if (value.is_string()) {
      text = "some_" + key;
      expected = text;
    } else if (value.is_number_float()) {
      text = "0.25";
      expected = 0.25;
    }
    const TrainingArgs args = parse_train({"--" + key, text});
    EXPECT_EQ(args.to_json().at(key), expected) << key;
  }
}

TEST(Recipe, SqlIsTheSeed) {
  TrainingArgs args;
  apply_recipe(args, "sql");
  EXPECT_DOUBLE_EQ(args.learning_rate, 1e-5);
  EXPECT_EQ(args.max_steps, 250);
  EXPECT_EQ(args.logging_steps, 10);
  EXPECT_EQ(args.save_steps, 250);
  EXPECT_EQ(args.eval_steps, 0);
  EXPECT_EQ(args.per_device_train_batch_size, 8);
  EXPECT_EQ(args.gradient_accumulation_steps, 1);
  EXPECT_TRUE(args.bf16);
  EXPECT_TRUE(args.gradient_checkpointing);
  EXPECT_TRUE(args.dataloader_drop_last);
  EXPECT_EQ(args.lora_r, 8);
  EXPECT_DOUBLE_EQ(args.lora_alpha, 64.0);
  EXPECT_DOUBLE_EQ(args.lora_dropout, 0.05);
  EXPECT_EQ(args.target_modules, "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
  EXPECT_TRUE(args.use_rslora);
  EXPECT_EQ(args.max_seq_length, 1024);
  EXPECT_TRUE(args.packing);
  EXPECT_FALSE(args.completion_only_loss);
  EXPECT_EQ(args.preset, "sql");
  EXPECT_EQ(args.train_rows, 50000);
  EXPECT_EQ(args.eval_rows, 500);
  EXPECT_EQ(args.data_seed, 23u);
  EXPECT_EQ(args.tensor_parallel_size, 1);
  // What the seed left at transformers' defaults stays there.
  EXPECT_EQ(args.lr_scheduler_type, "linear");
  EXPECT_EQ(args.warmup_steps, 0);
  EXPECT_DOUBLE_EQ(args.weight_decay, 0.0);
  EXPECT_EQ(args.seed, 42u);
  EXPECT_EQ(recipe_names(), std::vector<std::string_view>{"sql"});
}

TEST(Recipe, UnknownNameListsKnownOnes) {
  TrainingArgs args;
  EXPECT_ERROR(apply_recipe(args, "sqll"), "[train] unknown recipe 'sqll' (known: sql;");
  EXPECT_ERROR(parse_train({"--recipe", "alpaca"}), "unknown recipe 'alpaca' (known: sql;");
}

TEST(Recipe, FlagsOverrideItWhereverTheyStand) {
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"--recipe", "sql", "--learning_rate", "2e-4", "--bf16", "False"},
           {"--learning_rate", "2e-4", "--bf16", "False", "--recipe", "sql"},
           {"--learning_rate=2e-4", "--recipe=sql", "--bf16=false"}}) {
    const TrainingArgs args = parse_train(argv);
    EXPECT_DOUBLE_EQ(args.learning_rate, 2e-4) << argv.front();
    EXPECT_FALSE(args.bf16) << argv.front();
    EXPECT_EQ(args.max_steps, 250) << argv.front();  // the rest from the recipe
    EXPECT_TRUE(args.use_rslora) << argv.front();
  }
}

TEST(Recipe, YamlFile) {
  test::TempDir dir;
  test::write_text(dir / "tweaks.yaml",
                   "# lower rank, longer run\n"
                   "lora_r: 16\n"
                   "learning_rate: 2e-4\n"
                   "bf16: no\n"
                   "target_modules: [q_proj, v_proj]\n"
                   "output_dir: runs/a\n");
  TrainingArgs args;
  apply_recipe(args, (dir / "tweaks.yaml").string());
  EXPECT_EQ(args.lora_r, 16);
  EXPECT_DOUBLE_EQ(args.learning_rate, 2e-4);
  EXPECT_FALSE(args.bf16);
  EXPECT_EQ(args.target_modules, "q_proj,v_proj");
  EXPECT_EQ(args.output_dir, "runs/a");
  // defaults < recipe < recipe file < flags, however the line is ordered.
  const std::string file = (dir / "tweaks.yaml").string();
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"--recipe", "sql", "--recipe", file, "--lora_r", "32"},
           {"--lora_r", "32", "--recipe", "sql", "--recipe", file}}) {
    const TrainingArgs layered = parse_train(argv);
    EXPECT_EQ(layered.lora_r, 32);                     // flag
    EXPECT_DOUBLE_EQ(layered.learning_rate, 2e-4);     // file over recipe
    EXPECT_EQ(layered.max_steps, 250);                 // recipe
    EXPECT_EQ(layered.per_device_eval_batch_size, 8);  // default
  }
  // A YAML list in block form works too.
  test::write_text(dir / "block.yml", "target_modules:\n  - gate_proj\n  - up_proj\n");
  load_recipe_file(args, (dir / "block.yml").string());
  EXPECT_EQ(args.target_modules, "gate_proj,up_proj");
}

TEST(Recipe, JsonFile) {
  test::TempDir dir;
  test::write_text(dir / "r.json",
                   R"({"lora_r": 4, "lora_alpha": 8, "use_rslora": true, "warmup_ratio": 0.1,
                       "target_modules": ["k_proj", "o_proj"], "seed": 7})");
  const TrainingArgs args = parse_train({"--recipe", (dir / "r.json").string()});
  EXPECT_EQ(args.lora_r, 4);
  EXPECT_DOUBLE_EQ(args.lora_alpha, 8.0);
  EXPECT_TRUE(args.use_rslora);
  EXPECT_DOUBLE_EQ(args.warmup_ratio, 0.1);
  EXPECT_EQ(args.target_modules, "k_proj,o_proj");
  EXPECT_EQ(args.seed, 7u);
}

TEST(Recipe, FileErrorsNameFileAndKey) {
  test::TempDir dir;
  struct Case {
    std::string name;
    std::string text;
    std::string error;  // after "[train] PATH: "
  };
  const std::vector<Case> cases = {
      {"a.yaml", "lora_rank: 8\n", "unknown key 'lora_rank'"},
      {"b.yaml", "lora_r: eight\n", "key 'lora_r': expected an integer, got 'eight'"},
      {"c.yaml", "bf16: maybe\n", "key 'bf16': expected true or false, got 'maybe'"},
      {"d.yaml", "learning_rate: [1, 2]\n", "key 'learning_rate': expected one value, got a list"},
      {"e.yaml", "seed:\n", "key 'seed': has no value"},
      {"f.yaml", "lora_r: [8\n", "not valid YAML"},
      {"g.yaml", "- lora_r\n", "expected a mapping of settings"},
      {"h.json", R"({"lora_rank": 8})", "unknown key 'lora_rank'"},
      {"i.json", R"({"bf16": "yes"})", "key 'bf16': expected true or false, got \"yes\""},
      {"j.json", R"({"max_steps": 2.5})", "key 'max_steps': expected an integer, got '2.5'"},
      {"k.json", R"({"lora_r": "8"})", "key 'lora_r': expected a number, got \"8\""},
      {"l.json", R"({"output_dir": 3})", "key 'output_dir': expected a string, got 3"},
      {"m.json", R"({"lora_r": 8,})", "not valid JSON"},
      {"n.json", R"([1, 2])", "expected an object of settings"},
  };
  for (const Case& c : cases) {
    const std::string path = (dir / c.name).string();
    test::write_text(path, c.text);
    TrainingArgs args;
    const std::string before = args.to_json().dump();
    EXPECT_ERROR(load_recipe_file(args, path), "[train] " + path + ": " + c.error);
    EXPECT_EQ(args.to_json().dump(), before) << c.name << ": a bad file changed settings";
  }
  TrainingArgs args;
  EXPECT_ERROR(apply_recipe(args, (dir / "missing.yaml").string()), "missing.yaml");
  // Through the flag, the same message.
  EXPECT_ERROR(parse_train({"--recipe", (dir / "a.yaml").string()}), "unknown key 'lora_rank'");
}

TEST(TrainingArgsJson, HasEverySettingAndReadsBackAsARecipe) {
  TrainingArgs args = valid_args();
  args.tokenizer = "tok";
  args.resume_from_checkpoint = "latest";
  args.seed = 1234567890123ull;
  const nlohmann::json json = args.to_json();
  EXPECT_EQ(json.at("model"), "models/llama");
  EXPECT_EQ(json.at("learning_rate"), 1e-5);
  EXPECT_EQ(json.at("bf16"), true);
  EXPECT_EQ(json.at("lora_alpha"), 64.0);
  EXPECT_EQ(json.at("seed"), 1234567890123ull);
  EXPECT_EQ(json.at("tensor_parallel_size"), 1);

  test::TempDir dir;
  test::write_text(dir / "training_args.json", json.dump(2));
  TrainingArgs loaded;
  load_recipe_file(loaded, (dir / "training_args.json").string());
  EXPECT_EQ(loaded.to_json(), json);
}

TEST(TrainingArgsValidate, RecipeWithPathsIsValid) {
  EXPECT_NO_THROW(validate_training_args(valid_args()));
}

TEST(TrainingArgsValidate, EachBadSettingIsNamed) {
  struct Case {
    void (*change)(TrainingArgs&);
    std::string error;
  };
  const std::vector<Case> cases = {
      {[](TrainingArgs& a) { a.lora_r = 0; }, "[train] --lora_r must be at least 1, got 0"},
      {[](TrainingArgs& a) { a.lora_alpha = 0; }, "--lora_alpha must be above 0, got 0"},
      {[](TrainingArgs& a) { a.lora_dropout = 1.0; }, "--lora_dropout must be in [0, 1), got 1"},
      {[](TrainingArgs& a) { a.lora_dropout = -0.1; },
       "--lora_dropout must be in [0, 1), got -0.1"},
      {[](TrainingArgs& a) { a.learning_rate = -1e-5; },
       "--learning_rate must be at least 0, got -1e-05"},
      {[](TrainingArgs& a) { a.warmup_ratio = 1.5; }, "--warmup_ratio must be in [0, 1], got 1.5"},
      {[](TrainingArgs& a) { a.warmup_steps = -1; }, "--warmup_steps must be at least 0, got -1"},
      {[](TrainingArgs& a) { a.lr_scheduler_type = "polynomial"; },
       "[train] --lr_scheduler_type: polynomial is not supported (supported: linear, cosine, "
       "constant, constant_with_warmup)"},
      {[](TrainingArgs& a) { a.checkpoint_granularity = "layer"; },
       "[train] --checkpoint_granularity: layer is not supported (supported: selective, full)"},
      {[](TrainingArgs& a) { a.target_modules = "q_proj,qkv_proj"; },
       "[train] --target_modules: unknown target module 'qkv_proj'"},
      {[](TrainingArgs& a) { a.target_modules = ","; }, "--target_modules names no module"},
      {[](TrainingArgs& a) { a.output_dir.clear(); }, "[train] --output_dir is required"},
      {[](TrainingArgs& a) { a.model.clear(); }, "[train] --model is required"},
      {[](TrainingArgs& a) { a.data.clear(); }, "[train] --data is required"},
      {[](TrainingArgs& a) {
         a.max_steps = -1;
         a.num_train_epochs = 0;
       },
       "nothing to train: --max_steps is -1 and --num_train_epochs is 0"},
      {[](TrainingArgs& a) { a.ddp_timeout = -1; }, "--ddp_timeout must be positive, got -1"},
      {[](TrainingArgs& a) { a.tensor_parallel_size = 0; },
       "--tensor_parallel_size must be at least 1, got 0"},
      {[](TrainingArgs& a) { a.per_device_train_batch_size = 0; },
       "--per_device_train_batch_size must be at least 1, got 0"},
      {[](TrainingArgs& a) { a.per_device_eval_batch_size = 0; },
       "--per_device_eval_batch_size must be at least 1, got 0"},
      {[](TrainingArgs& a) { a.gradient_accumulation_steps = 0; },
       "--gradient_accumulation_steps must be at least 1, got 0"},
      {[](TrainingArgs& a) { a.logging_steps = 0; }, "--logging_steps must be at least 1, got 0"},
      {[](TrainingArgs& a) { a.save_steps = 0; }, "--save_steps must be at least 1, got 0"},
      {[](TrainingArgs& a) { a.eval_steps = -5; }, "--eval_steps must be at least 0, got -5"},
      {[](TrainingArgs& a) { a.save_total_limit = -1; },
       "--save_total_limit must be at least 0, got -1"},
      {[](TrainingArgs& a) { a.max_seq_length = 1; }, "--max_seq_length must be at least 2, got 1"},
      {[](TrainingArgs& a) { a.train_rows = 0; }, "--train_rows must be at least 1, got 0"},
      {[](TrainingArgs& a) { a.eval_rows = -1; }, "--eval_rows must be at least 0, got -1"},
      {[](TrainingArgs& a) { a.preset = "chatml"; }, "[train] --preset: unknown preset 'chatml'"},
      {[](TrainingArgs& a) { a.weight_decay = -0.1; }, "--weight_decay must be at least 0"},
      {[](TrainingArgs& a) { a.adam_beta1 = 1.0; }, "--adam_beta1 must be in [0, 1), got 1"},
      {[](TrainingArgs& a) { a.adam_beta2 = -0.5; }, "--adam_beta2 must be in [0, 1), got -0.5"},
      {[](TrainingArgs& a) { a.adam_epsilon = 0; }, "--adam_epsilon must be above 0, got 0"},
      {[](TrainingArgs& a) { a.max_grad_norm = -1; }, "--max_grad_norm must be at least 0"},
      {[](TrainingArgs& a) { a.num_train_epochs = -1; },
       "--num_train_epochs must be at least 0, got -1"},
  };
  for (const Case& c : cases) {
    TrainingArgs args = valid_args();
    c.change(args);
    EXPECT_ERROR(validate_training_args(args), c.error);
  }
  // Edges that are fine: warm-up ratio 1, dropout 0, epochs instead of steps, no clipping.
  TrainingArgs edges = valid_args();
  edges.warmup_ratio = 1.0;
  edges.lora_dropout = 0.0;
  edges.max_steps = -1;
  edges.num_train_epochs = 0.5;
  edges.target_modules = "all-linear";
  edges.lr_scheduler_type = "constant_with_warmup";
  edges.max_grad_norm = 0;
  EXPECT_NO_THROW(validate_training_args(edges));
}

// Every HF flag either works or is refused, naming the flag and what it takes.
TEST(TrainingArgsFlags, RefusalsNameTheFlagAndTheSupportedValues) {
  struct Case {
    std::vector<std::string> argv;
    std::string error;
  };
  const std::string strategies = "is not supported (supported: no, steps, epoch)";
  const std::vector<Case> cases = {
      {{"--optim", "sgd"},
       "[train] --optim: sgd is not supported (supported: adamw_torch, adamw_torch_fused)"},
      {{"--optim", "adamw_hf"}, "[train] --optim: adamw_hf is not supported"},
      {{"--save_strategy", "best"}, "[train] --save_strategy: best " + strategies},
      {{"--evaluation_strategy", "always"}, "[train] --eval_strategy: always " + strategies},
      {{"--logging_strategy", "Steps"}, "[train] --logging_strategy: Steps " + strategies},
      {{"--lr_scheduler_type", "cosine_with_restarts"},
       "[train] --lr_scheduler_type: cosine_with_restarts is not supported (supported: linear, "
       "cosine, constant, constant_with_warmup)"},
      {{"--do_train", "maybe"}, "[train] --do_train: expected true or false, got 'maybe'"},
      {{"--warmup_steps", "0.1"}, "[train] --warmup_steps: expected an integer, got '0.1'"},
  };
  for (const Case& c : cases) EXPECT_ERROR(parse_train(c.argv), c.error);
  // The same list for a recipe file's key and for settings made in code.
  test::TempDir dir;
  write_file_atomic(dir / "r.yaml", "optim: sgd\n");
  EXPECT_ERROR(parse_train({"--recipe", (dir / "r.yaml").string()}),
               "r.yaml: key 'optim': sgd is not supported (supported: adamw_torch, "
               "adamw_torch_fused)");
  TrainingArgs args = valid_args();
  args.save_strategy = "best";
  EXPECT_ERROR(validate_training_args(args),
               "[train] --save_strategy: best is not supported (supported: no, steps, epoch)");
  args = valid_args();
  args.report_to = "tensorboard,wandb";
  EXPECT_ERROR(validate_training_args(args),
               "[train] --report_to wandb is not supported: llama-lora writes TensorBoard event "
               "files only (accepted: tensorboard, all, none)");
}

// transformers' run scripts skip trainer.train() under --do_train False; `train` refuses it
// rather than exit 0 having done nothing.
TEST(TrainingArgsFlags, DoTrainFalseIsRefused) {
  TrainingArgs args = parse_train({"--do_train", "False"}, valid_args());
  EXPECT_FALSE(args.do_train);
  EXPECT_ERROR(validate_training_args(args),
               "[train] --do_train False: `llama-lora train` always trains (transformers' scripts "
               "skip training then; to evaluate a model or adapter use `llama-lora eval`)");
  EXPECT_NO_THROW(validate_training_args(parse_train({"--do_train", "True"}, valid_args())));
  EXPECT_NO_THROW(validate_training_args(parse_train({"--do_train"}, valid_args())));
}

// transformers' constant has no warm-up (get_scheduler ignores num_warmup_steps for it): a
// warm-up that would do nothing is refused, pointing at constant_with_warmup.
TEST(TrainingArgsFlags, ConstantScheduleRefusesAWarmUp) {
  TrainingArgs args = valid_args();
  args.lr_scheduler_type = "constant";
  EXPECT_NO_THROW(validate_training_args(args));
  args.warmup_steps = 10;
  EXPECT_ERROR(validate_training_args(args),
               "[train] --lr_scheduler_type constant has no warm-up, so --warmup_steps 10 / "
               "--warmup_ratio 0 would do nothing (for a warm-up: --lr_scheduler_type "
               "constant_with_warmup)");
  args.warmup_steps = 0;
  args.warmup_ratio = 0.1;
  EXPECT_ERROR(validate_training_args(args), "--warmup_ratio 0.1 would do nothing");
  args.lr_scheduler_type = "constant_with_warmup";
  EXPECT_NO_THROW(validate_training_args(args));
}

TEST(TrainingArgsFlags, StrategiesAndOptimizerParse) {
  const TrainingArgs defaults;
  EXPECT_EQ(defaults.optim, "adamw_torch_fused");  // transformers 5's default
  EXPECT_EQ(defaults.logging_strategy, "steps");
  EXPECT_EQ(defaults.eval_strategy, "steps");  // llama-lora's; transformers': no
  EXPECT_EQ(defaults.save_strategy, "steps");
  EXPECT_TRUE(defaults.do_train);
  const TrainingArgs args =
      parse_train({"--logging_strategy", "epoch", "--evaluation_strategy", "no", "--save_strategy",
                   "epoch", "--optim", "adamw_torch"},
                  valid_args());
  EXPECT_EQ(args.logging_strategy, "epoch");
  EXPECT_EQ(args.eval_strategy, "no");
  EXPECT_EQ(args.save_strategy, "epoch");
  EXPECT_EQ(args.optim, "adamw_torch");
  EXPECT_NO_THROW(validate_training_args(args));
  EXPECT_EQ(parse_train({"--eval_strategy=epoch"}).eval_strategy, "epoch");
}

}  // namespace
}  // namespace ll
