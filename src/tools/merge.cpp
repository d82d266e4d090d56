// See merge.h.
#include "tools/merge.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <utility>

#include "core/dtype.h"
#include "core/error.h"
#include "formats/input_checks.h"
#include "formats/llama_config.h"
#include "formats/safetensors.h"
#include "model/adapter_shards.h"
#include "model/llama_weights.h"
#include "model/lora.h"
#include "model/peft_adapter.h"
#include "tools/consolidate.h"

namespace ll {
namespace {

constexpr std::string_view kOrigin = "merge";
constexpr const char* kAdapterFile = "adapter_model.safetensors";
// Copied from the base folder when present (config.json always is: the base needs one).
constexpr const char* kModelFiles[] = {"config.json", "generation_config.json"};
// Copied from the base folder, or from MergeOptions::tokenizer, when present.
constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json",
                                           "special_tokens_map.json"};

std::string model_shape_text(const LlamaConfig& c) {
  return std::string("hidden_size ") + std::to_string(c.hidden_size) + ", intermediate_size " +
         std::to_string(c.intermediate_size) + ", " + std::to_string(c.num_hidden_layers) +
         " layers, " + std::to_string(c.num_attention_heads) + " heads / " +
         std::to_string(c.num_key_value_heads) + " kv heads of " + std::to_string(c.head_dim);
}

std::string base_tensor_name(int64_t layer, LoraTarget target) {
  return std::string("model.layers.") + std::to_string(layer) + "." +
         std::string(lora_target_block(target)) + "." + std::string(lora_target_name(target)) +
         ".weight";
}

// Checks every adapter tensor against the model's shape before load_peft_adapter reads them,
// so that an adapter made for another model is refused with one line that says so. Returns
// the adapter's tensors (parsed names).
std::vector<LoraTensorName> check_adapter_fits(const fs::path& adapter_dir,
                                               const LlamaConfig& model, const fs::path& base) {
  const SafetensorsModel tensors =
      SafetensorsModel::open(adapter_dir, kAdapterFile, "adapter_model.safetensors.index.json");
  const std::string where = (adapter_dir / kAdapterFile).string();
  const std::string mismatch = ": the adapter was made for another model shape (" + base.string() +
                               ": " + model_shape_text(model) + ")";
  std::vector<LoraTensorName> out;
  for (const std::string& name : tensors.tensor_names()) {
    const std::optional<LoraTensorName> parsed = parse_lora_tensor_name(name);
    check(parsed.has_value(), kOrigin,
          where + ": tensor " + quote_name(name) +
              " is not a LoRA A/B matrix of a Llama projection (merge supports only those)");
    const std::vector<int64_t>& shape = tensors.info(name).shape;
    check(parsed->layer < model.num_hidden_layers, kOrigin,
          where + ": tensor " + quote_name(name) + " is for layer " +
              std::to_string(parsed->layer) + mismatch);
    const auto [in, out_features] = lora_target_shape(model, parsed->target);
    const bool fits = shape.size() == 2 &&
                      (parsed->part == LoraPart::A ? shape[1] == in : shape[0] == out_features);
    if (!fits) {
      std::string needed = "[";
      needed += parsed->part == LoraPart::A ? std::string("r, ") + std::to_string(in)
                                            : std::to_string(out_features) + ", r";
      needed += "]";
      fail(kOrigin, where + ": tensor " + quote_name(name) + " is " + shape_text(shape) +
                        " where the model needs " + needed + mismatch);
    }
    out.push_back(*parsed);
  }
  return out;
}

// Reads element i of a float tensor of `dtype` (the bytes may be unaligned in the map).
template <DType kDType>
float load_element(const std::byte* data, int64_t i) {
  if constexpr (kDType == DType::F32) {
    float value;
    std::memcpy(&value, data + i * 4, 4);
    return value;
  } else {
    uint16_t bits;
    std::memcpy(&bits, data + i * 2, 2);
    return kDType == DType::BF16 ? bf16_to_f32(bits) : f16_to_f32(bits);
  }
}

template <DType kDType>
void store_element(std::byte* data, int64_t i, float value) {
  if constexpr (kDType == DType::F32) {
    std::memcpy(data + i * 4, &value, 4);
  } else {
    const uint16_t bits = kDType == DType::BF16 ? f32_to_bf16(value) : f32_to_f16(value);
    std::memcpy(data + i * 2, &bits, 2);
  }
}

// out = round_to_dtype(W + delta) for one projection W [out, in] (see merge.h for delta).
//
// Rounding once differs from peft on bf16 models: peft's LoraLayer.merge (0.13) computes
// delta = (B @ A) * scaling in the LoRA weights' dtype and then does `weight += delta`. When
// the LoRA weights are bf16 (an adapter cast to a bf16 base's dtype, the usual way a bf16
// model is merged) the delta is rounded to bf16 first and then added in bf16, rounding a
// second time. We keep the delta in fp32 and round W + delta once, so a bf16 result can
// differ from peft's on some elements, by about one bf16 ulp (ours is the correctly rounded
// W + delta; tests/tools/test_merge.cpp prints how often and how far on a fixture). For fp32
// weights both round once to fp32: the results agree up to the summation order of B·A.
template <DType kDType>
void merge_projection(std::span<const std::byte> weight, const LoraMatrix& m,
                      std::span<std::byte> out) {
  const int64_t r = m.r;  // this module's rank and scale (rank_pattern, alpha_pattern)
  const auto scale = static_cast<float>(m.scale);
  const int64_t rows = m.out;
  const int64_t cols = m.in;
#pragma omp parallel
  {
    std::vector<float> delta(static_cast<size_t>(cols));  // [in] fp32, one row of B·A
#pragma omp for schedule(static)
    for (int64_t o = 0; o < rows; ++o) {
      std::fill(delta.begin(), delta.end(), 0.0f);
      for (int64_t k = 0; k < r; ++k) {
        const float b = m.b[static_cast<size_t>(o * r + k)];
        const float* a = m.a.data() + k * cols;  // row k of A [r, in]
        for (int64_t i = 0; i < cols; ++i) delta[static_cast<size_t>(i)] += b * a[i];
      }
      const std::byte* w_row = weight.data() + o * cols * static_cast<int64_t>(dtype_size(kDType));
      std::byte* out_row = out.data() + o * cols * static_cast<int64_t>(dtype_size(kDType));
      for (int64_t i = 0; i < cols; ++i) {
        const float merged = load_element<kDType>(w_row, i) + delta[static_cast<size_t>(i)] * scale;
        store_element<kDType>(out_row, i, merged);
      }
    }
  }
}

void merge_projection(DType dtype, std::span<const std::byte> weight, const LoraMatrix& m,
                      std::span<std::byte> out) {
  switch (dtype) {
    case DType::F32:
      return merge_projection<DType::F32>(weight, m, out);
    case DType::BF16:
      return merge_projection<DType::BF16>(weight, m, out);
    case DType::F16:
      return merge_projection<DType::F16>(weight, m, out);
    case DType::I32:
    case DType::I64:
      break;
  }
  fail(kOrigin, "a projection weight is not a float tensor");
}

// Drops the pages of a tensor that has been written from this process's map of the base
// (they stay in the page cache; a later read faults them back in). Without it the peak
// resident set would count every page of the base read so far (2.5 GB for a 1B model),
// although the kernel may reclaim them at any time; with it, it stays near one tensor.
void release_mapped_pages(std::span<const std::byte> bytes) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto first = reinterpret_cast<uintptr_t>(bytes.data());
  const uintptr_t begin = (first + page - 1) / page * page;  // whole pages inside the tensor
  const uintptr_t end = (first + bytes.size()) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void copy_file_atomic(const fs::path& from, const fs::path& to) {
  write_file_atomic(to, read_file(from));
}

}  // namespace

MergeResult merge_adapter_into(const fs::path& base, const fs::path& adapter, const fs::path& dir,
                               const MergeOptions& options) {
  std::error_code exists_ec;
  check(options.tokenizer.empty() ||
            fs::is_regular_file(options.tokenizer / "tokenizer.json", exists_ec),
        kOrigin,
        "--tokenizer " + options.tokenizer.string() +
            ": no tokenizer.json there (a tokenizer folder, e.g. the Instruct model's)");
  const LlamaConfig config = load_llama_config(base);
  const std::vector<LoraTensorName> adapter_tensors = check_adapter_fits(adapter, config, base);
  const LoraAdapter lora = load_peft_adapter(adapter, config);
  for (const LoraTensorName& tensor : adapter_tensors) {
    check(lora.config.adapts(tensor.layer, tensor.target), kOrigin,
          (adapter / kAdapterFile).string() + ": tensor " +
              quote_name(lora_tensor_name(tensor.layer, tensor.target, tensor.part)) +
              " adapts a module that adapter_config.json does not (target_modules, "
              "layers_to_transform, exclude_modules)");
  }
  const SafetensorsModel model = SafetensorsModel::open(base);

  // Which base tensors receive a delta (their shapes are checked with the others' below).
  std::map<std::string, const LoraMatrix*, std::less<>> deltas;
  for (size_t layer = 0; layer < lora.layers().size(); ++layer) {
    for (LoraTarget target : kAllLoraTargets) {
      const auto& matrix = lora.layers()[layer][static_cast<size_t>(target)];
      if (matrix) deltas[base_tensor_name(static_cast<int64_t>(layer), target)] = &*matrix;
    }
  }
  // save_pretrained's order (the state_dict's), then any other tensor the base holds.
  std::vector<TensorInfo> layout;
  std::set<std::string> placed;
  for (const auto& [name, shape] : llama_tensor_shapes(config)) {
    check(model.contains(name), kOrigin,
          base.string() + ": tensor " + quote_name(name) + " is missing from the model weights");
    const TensorInfo& info = model.info(name);
    check(info.shape == shape && dtype_is_float(info.dtype), kOrigin,
          base.string() + ": tensor " + quote_name(name) + " is " +
              std::string(dtype_name(info.dtype)) + " " + shape_text(info.shape) +
              " but config.json implies a float tensor " + shape_text(shape));
    layout.push_back({name, info.dtype, info.shape, 0, 0});
    placed.insert(name);
  }
  for (const std::string& name : model.tensor_names()) {
    const TensorInfo& info = model.info(name);
    if (placed.insert(name).second) layout.push_back({name, info.dtype, info.shape, 0, 0});
  }

  MergeResult result;
  std::vector<std::byte> buffer;        // one merged tensor, in the base dtype
  std::span<const std::byte> previous;  // the base bytes of the tensor written last
  const ProduceTensorBytes produce = [&](size_t i) -> std::span<const std::byte> {
    release_mapped_pages(previous);  // written: the writer is done with them
    const TensorInfo& info = layout[i];
    const std::span<const std::byte> stored = model.data(info.name);
    previous = stored;
    result.tensor_bytes += stored.size();
    const auto delta = deltas.find(info.name);
    if (delta == deltas.end()) {
      ++result.copied_tensors;
      return stored;  // straight from the map, no copy
    }
    buffer.resize(stored.size());
    merge_projection(info.dtype, stored, *delta->second, buffer);
    ++result.merged_tensors;
    return buffer;
  };
  result.weight_files =
      write_sharded_safetensors_streaming(dir, layout, options.max_shard_bytes, {}, produce);
  release_mapped_pages(previous);
  std::error_code ec;
  for (const char* name : kModelFiles) {
    if (fs::is_regular_file(base / name, ec)) copy_file_atomic(base / name, dir / name);
  }
  const fs::path tokenizer = options.tokenizer.empty() ? base : options.tokenizer;
  for (const char* name : kTokenizerFiles) {
    if (fs::is_regular_file(tokenizer / name, ec)) copy_file_atomic(tokenizer / name, dir / name);
  }
  return result;
}

bool is_sharded_checkpoint(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / kAdapterFile, ec) || fs::exists(dir / "adapter_model.bin", ec)) return false;
  return is_neuron_checkpoint(dir) || !list_adapter_tp_shards(dir).empty();
}

MergeResult merge_adapter(const fs::path& base, const fs::path& adapter, const fs::path& output,
                          const MergeOptions& options) {
  std::error_code ec;
  check(!fs::equivalent(base, output, ec) && !fs::equivalent(adapter, output, ec), kOrigin,
        output.string() + ": is an input folder; choose another output folder");
  if (options.verify == MergeVerify::On) check_verify_options(options.verify_options);
  // A training checkpoint of tensor-parallel shards (ours or Optimum Neuron's) is consolidated
  // first, into a staging folder beside the output that is never committed (so removed).
  std::optional<StagedDir> consolidated;
  fs::path adapter_dir = adapter;
  if (is_sharded_checkpoint(adapter)) {
    consolidated.emplace(fs::path(output.string() + ".adapter"), StagedDir::Existing::Replace);
    consolidate_checkpoint_into(adapter, consolidated->path());
    adapter_dir = consolidated->path();
  }
  StagedDir staged(output, options.existing);
  MergeResult result = merge_adapter_into(base, adapter_dir, staged.path(), options);
  if (options.verify == MergeVerify::On) {
    result.verification =
        verify_merged_model(base, adapter_dir, staged.path(), options.verify_options);
    check(result.verification->passed(), kOrigin,
          output.string() + ": not written: the merged model is not base + adapter: " +
              verification_summary(*result.verification));
  }
  staged.commit();
  return result;
}

}  // namespace ll
