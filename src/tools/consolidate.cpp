// See consolidate.h.
#include "tools/consolidate.h"

#include <algorithm>
#include <array>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "formats/input_checks.h"
#include "formats/safetensors.h"
#include "model/adapter_shards.h"
#include "model/lora.h"
#include "model/peft_config.h"

namespace ll {
namespace {

using nlohmann::json;

constexpr std::string_view kOrigin = "consolidate";
constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kAdapterFile = "adapter_model.safetensors";

// adapter_config.json as load_peft_adapter reads it (model/peft_config.h), errors re-raised as
// consolidate's.
LoraConfig read_adapter_config(const fs::path& path) {
  try {
    return parse_peft_lora_config(read_file(path), path.string());
  } catch (const Error& error) {
    fail(kOrigin, without_origin(error));
  }
}

// The structural checks of consolidate.h on the whole tensors (name, 2-D shape); returns the
// number of layers. `where` names the file the tensors come from.
int64_t check_adapter_tensors(
    const LoraConfig& config,
    const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors,
    const std::string& where) {
  std::map<std::tuple<int64_t, LoraTarget, LoraPart>, const std::vector<int64_t>*> found;
  std::array<std::optional<std::pair<int64_t, int64_t>>, kLoraTargetCount> in_out;  // per target
  int64_t layers = 0;
  for (const auto& [name, shape] : tensors) {
    const std::string here = where + ": tensor " + quote_name(name);
    const std::optional<LoraTensorName> parsed = parse_lora_tensor_name(name);
    check(parsed.has_value(), kOrigin, here + " is not a peft LoRA tensor name");
    const std::string target_name(lora_target_name(parsed->target));
    check(config.adapts(parsed->layer, parsed->target), kOrigin,
          here + " adapts " + target_name + " of layer " + std::to_string(parsed->layer) +
              ", which adapter_config.json does not (target_modules, layers_to_transform, "
              "exclude_modules)");
    check(shape.size() == 2 && shape[0] >= 1 && shape[1] >= 1, kOrigin,
          here + " has shape " + shape_text(shape) + "; expected a matrix");
    const bool is_a = parsed->part == LoraPart::A;
    const int64_t r = config.rank_of(parsed->layer, parsed->target);
    check(shape[is_a ? 0 : 1] == r, kOrigin,
          here + " has shape " + shape_text(shape) + " but r is " + std::to_string(r) +
              (is_a ? " (lora_A is [r, in])" : " (lora_B is [out, r])"));
    auto& sizes = in_out[static_cast<size_t>(parsed->target)];
    if (!sizes) sizes = std::pair<int64_t, int64_t>{0, 0};
    int64_t& size = is_a ? sizes->first : sizes->second;
    const int64_t dim = is_a ? shape[1] : shape[0];
    if (size == 0) size = dim;
    check(size == dim, kOrigin,
          here + " has shape " + shape_text(shape) + " but other layers' " + target_name +
              (is_a ? " have in = " : " have out = ") + std::to_string(size));
    found[{parsed->layer, parsed->target, parsed->part}] = &shape;
    layers = std::max(layers, parsed->layer + 1);
  }
  for (int64_t layer = 0; layer < layers; ++layer) {
    for (LoraTarget target : kAllLoraTargets) {
      if (!config.adapts(layer, target)) continue;
      for (LoraPart part : kLoraParts) {
        check(found.count({layer, target, part}) == 1, kOrigin,
              where + ": tensor " + quote_name(lora_tensor_name(layer, target, part)) +
                  " is missing (the adapter has " + std::to_string(layers) + " layers)");
      }
    }
  }
  return layers;
}

}  // namespace

ConsolidateResult consolidate_checkpoint_into(const fs::path& checkpoint, const fs::path& dir) {
  std::error_code ec;
  const std::string where = checkpoint.string();
  check(fs::is_directory(checkpoint, ec), kOrigin, where + ": checkpoint folder not found");
  const fs::path config_path = checkpoint / kConfigFile;
  check(fs::is_regular_file(config_path, ec), kOrigin,
        config_path.string() + ": missing (every checkpoint holds one adapter_config.json)");
  const LoraConfig config = read_adapter_config(config_path);

  const std::vector<std::string> shard_names = list_adapter_tp_shards(checkpoint);
  const bool has_single = fs::is_regular_file(checkpoint / kAdapterFile, ec);
  const bool neuron = is_neuron_checkpoint(checkpoint);
  if (int{has_single} + int{!shard_names.empty()} + int{neuron} > 1) {
    fail(kOrigin, where + ": holds more than one of adapter_model.safetensors, our shards (" +
                      (shard_names.empty() ? std::string("none") : shard_names.front()) +
                      ") and Optimum Neuron's adapter_shards/; it is unclear which is the adapter");
  }
  check(has_single || !shard_names.empty() || neuron, kOrigin,
        where +
            ": holds none of adapter_model.safetensors, adapter-tp<r>-of-<n>.safetensors and "
            "Optimum Neuron's adapter_shards/");

  ConsolidateResult result;
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  if (has_single) {
    // Tensor parallel size 1: check, then copy the file as it is.
    const SafetensorsFile file = SafetensorsFile::open(checkpoint / kAdapterFile);
    for (const TensorInfo& info : file.tensors()) {
      check(dtype_is_float(info.dtype), kOrigin,
            file.path().string() + ": tensor " + quote_name(info.name) + " has dtype " +
                std::string(dtype_name(info.dtype)) + ", not a float type");
      shapes.emplace_back(info.name, info.shape);
      result.tensor_bytes += info.nbytes;
    }
    result.layers = check_adapter_tensors(config, shapes, file.path().string());
    const MappedFile bytes(checkpoint / kAdapterFile);
    write_file_atomic(dir / kAdapterFile, bytes.bytes());
  } else {
    const AdapterTpShards shards =
        neuron ? AdapterTpShards::open_neuron(checkpoint) : AdapterTpShards::open(checkpoint);
    result.tp_size = shards.tp_size();
    std::vector<TensorInfo> layout;
    for (const AdapterTpShards::Tensor& tensor : shards.tensors()) {
      shapes.emplace_back(tensor.name, tensor.shape);
      TensorInfo info;
      info.name = tensor.name;
      info.dtype = tensor.dtype;
      info.shape = tensor.shape;
      layout.push_back(std::move(info));
    }
    result.layers = check_adapter_tensors(config, shapes, shards.file(0).path().string());
    // One tensor at a time: the writer fixes the header up front, then takes each tensor's
    // bytes in layout order; `scratch` holds at most the largest joined tensor.
    SafetensorsWriter writer(dir / kAdapterFile, layout, {{"format", "pt"}});
    std::vector<std::byte> scratch;
    for (size_t i = 0; i < layout.size(); ++i) {
      const std::span<const std::byte> bytes = shards.read(i, scratch);
      result.tensor_bytes += bytes.size();
      writer.write_next(layout[i].name, bytes);
    }
    writer.finish();
  }
  result.tensors = shapes.size();
  write_file_atomic(dir / kConfigFile, read_file(config_path));
  return result;
}

ConsolidateResult consolidate_checkpoint(const fs::path& checkpoint, const fs::path& output,
                                         StagedDir::Existing existing) {
  std::error_code ec;
  check(!fs::equivalent(checkpoint, output, ec), kOrigin,
        output.string() + ": is the checkpoint itself; choose another output folder");
  StagedDir staged(output, existing);
  const ConsolidateResult result = consolidate_checkpoint_into(checkpoint, staged.path());
  staged.commit();
  return result;
}

}  // namespace ll
