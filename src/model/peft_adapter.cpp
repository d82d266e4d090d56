// See peft_adapter.h.
#include "model/peft_adapter.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "formats/safetensors.h"

namespace ll {
namespace {

using nlohmann::json;

const json& require(const json& config, const char* field, const std::string& origin) {
  if (!config.contains(field)) fail("adapter", origin + ": missing required field '" + field + "'");
  return config.at(field);
}

}  // namespace

LoraAdapter load_peft_adapter(const fs::path& dir, const LlamaConfig& model,
                              const std::string& weights_file) {
  const fs::path config_path = dir / "adapter_config.json";
  const std::string origin = config_path.string();
  json config;
  try {
    config = json::parse(read_file(config_path));
  } catch (const json::exception& error) {
    fail("adapter", origin + ": not valid JSON (" + std::string(error.what()) + ")");
  }
  if (!config.is_object()) fail("adapter", origin + ": not a JSON object");
  LoraConfig lora;
  try {
    const json& peft_type = require(config, "peft_type", origin);
    if (peft_type != "LORA") {
      fail("adapter", origin + ": peft_type " + peft_type.dump() + " is not supported (LORA only)");
    }
    lora.r = require(config, "r", origin).get<int64_t>();
    lora.alpha = require(config, "lora_alpha", origin).get<double>();
    lora.dropout = config.value("lora_dropout", 0.0);
    lora.use_rslora = config.value("use_rslora", false);
    if (config.contains("bias") && config["bias"] != "none") {
      fail("adapter", origin + ": bias " + config["bias"].dump() + " is not supported (none only)");
    }
    if (config.value("use_dora", false)) fail("adapter", origin + ": DoRA is not supported");
    const json& targets = require(config, "target_modules", origin);
    if (targets.is_string()) {
      lora.targets = parse_lora_targets(targets.get<std::string>());
    } else {
      for (const json& name : targets) {
        const auto target = parse_lora_target(name.get<std::string>());
        if (!target) {
          fail("adapter", origin + ": target module " + name.dump() + " is not a Llama projection");
        }
        lora.targets[static_cast<size_t>(*target)] = true;
      }
    }
  } catch (const json::type_error& error) {
    fail("adapter", origin + ": a field has the wrong type (" + std::string(error.what()) + ")");
  }
  if (lora.r < 1) fail("adapter", origin + ": r must be at least 1");
  if (!lora.targets_any()) fail("adapter", origin + ": target_modules is empty");

  const SafetensorsModel tensors =
      SafetensorsModel::open(dir, weights_file, weights_file + ".index.json");
  LoraAdapter adapter = lora_init(model, lora, 0);
  for (const LoraTensor& tensor : adapter.tensors()) {
    const std::string name = tensor.name();
    if (!tensors.contains(name)) {
      fail("adapter", (dir / weights_file).string() + ": tensor '" + name + "' is missing");
    }
    const TensorInfo& info = tensors.info(name);
    if (info.shape != std::vector<int64_t>{tensor.rows, tensor.cols}) {
      fail("adapter", (dir / weights_file).string() + ": tensor '" + name +
                          "' has the wrong shape for this model (expected [" +
                          std::to_string(tensor.rows) + ", " + std::to_string(tensor.cols) + "])");
    }
    const std::vector<float> values = tensors.read_f32(name);
    std::copy(values.begin(), values.end(), adapter.parameter(tensor).begin());
  }
  return adapter;
}

void save_peft_adapter_config(const fs::path& dir, const LoraConfig& lora,
                              const std::string& base_model) {
  json targets = json::array();
  for (LoraTarget target : kAllLoraTargets) {
    if (lora.targets[static_cast<size_t>(target)]) targets.push_back(lora_target_name(target));
  }
  json config = {{"peft_type", "LORA"},
                 {"task_type", "CAUSAL_LM"},
                 {"base_model_name_or_path", base_model.empty() ? json(nullptr) : json(base_model)},
                 {"r", lora.r},
                 {"lora_alpha", lora.alpha},
                 {"lora_dropout", lora.dropout},
                 {"use_rslora", lora.use_rslora},
                 {"target_modules", targets},
                 {"bias", "none"},
                 {"fan_in_fan_out", false},
                 {"inference_mode", true},
                 {"init_lora_weights", true},
                 {"use_dora", false},
                 {"modules_to_save", nullptr},
                 {"layers_to_transform", nullptr},
                 {"layers_pattern", nullptr},
                 {"rank_pattern", json::object()},
                 {"alpha_pattern", json::object()},
                 {"revision", nullptr}};
  write_file_atomic(dir / "adapter_config.json", config.dump(2) + "\n");
}

void save_peft_adapter(const fs::path& dir, const LoraAdapter& adapter,
                       const std::string& base_model) {
  const LoraConfig& lora = adapter.config;
  save_peft_adapter_config(dir, lora, base_model);

  std::optional<LoraAdapter> copy;
  const LoraAdapter& host = host_view(adapter, copy);
  std::vector<TensorToWrite> tensors;
  for (const LoraTensor& tensor : host.tensors()) {
    tensors.push_back({tensor.name(),
                       DType::F32,
                       {tensor.rows, tensor.cols},
                       std::as_bytes(host.parameter(tensor))});
  }
  write_safetensors(dir / "adapter_model.safetensors", tensors, {{"format", "pt"}});
}

}  // namespace ll
