// See training_args.h: the built-in recipes (sql, the seed's settings) and recipe files (YAML,
// JSON), whose keys are the names of training_fields.h's table.
#include <yaml-cpp/yaml.h>

#include <string>

#include "core/error.h"
#include "core/file.h"
#include "train/training_args.h"
#include "train/training_fields.h"

namespace ll {

namespace {

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
    } else if (is_string && field.name.ends_with("_pattern") && value.is_object()) {
      value_text = value.dump();  // rank/alpha patterns: their JSON text
    } else if (is_string && value.is_array() &&
               (field.name == "target_modules" || field.name == "layers_to_transform")) {
      for (const auto& item : value) {
        if (!item.is_string() && !item.is_number_integer()) fail_key(path, key, "expected a list");
        const std::string item_text = item.is_string() ? item.get<std::string>() : item.dump();
        value_text += (value_text.empty() ? "" : ",") + item_text;
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

}  // namespace

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

}  // namespace ll
