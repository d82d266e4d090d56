// See peft_adapter.h.
#include "model/peft_adapter.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/peft_config.h"

namespace ll {

LoraAdapter load_peft_adapter(const fs::path& dir, const LlamaConfig& model,
                              const std::string& weights_file) {
  const fs::path config_path = dir / "adapter_config.json";
  const LoraConfig lora = parse_peft_lora_config(read_file(config_path), config_path.string());

  const SafetensorsModel tensors =
      SafetensorsModel::open(dir, weights_file, weights_file + ".index.json");
  LoraAdapter adapter;
  try {
    adapter = lora_init(model, lora, 0);
  } catch (const Error& error) {
    fail("adapter", config_path.string() + ": " + without_origin(error));
  }
  const std::string where = (dir / weights_file).string();
  std::set<std::string, std::less<>> expected;
  for (const LoraTensor& tensor : adapter.tensors()) {
    const std::string name = tensor.name();
    expected.insert(name);
    if (!tensors.contains(name)) fail("adapter", where + ": tensor '" + name + "' is missing");
    const TensorInfo& info = tensors.info(name);
    if (info.shape != std::vector<int64_t>{tensor.rows, tensor.cols}) {
      fail("adapter",
           where + ": tensor '" + name +
               "' has the wrong shape for this model and adapter_config.json (expected [" +
               std::to_string(tensor.rows) + ", " + std::to_string(tensor.cols) + "])");
    }
    const std::vector<float> values = tensors.read_f32(name);
    std::copy(values.begin(), values.end(), adapter.parameter(tensor).begin());
  }
  // peft would warn and skip a tensor its config does not place; we refuse it.
  for (const std::string& name : tensors.tensor_names()) {
    if (!expected.contains(name)) {
      fail("adapter", where + ": tensor '" + name +
                          "' is not a LoRA matrix of a module that adapter_config.json adapts "
                          "(target_modules, layers_to_transform, exclude_modules)");
    }
  }
  return adapter;
}

void save_peft_adapter_config(const fs::path& dir, const LoraConfig& lora,
                              const std::string& base_model) {
  write_file_atomic(dir / "adapter_config.json", peft_lora_config_text(lora, base_model));
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
