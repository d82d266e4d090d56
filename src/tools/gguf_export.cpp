// See gguf_export.h.
#include "tools/gguf_export.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <numbers>
#include <optional>
#include <utility>

#include "core/dtype.h"
#include "core/error.h"
#include "formats/gguf_write.h"
#include "formats/input_checks.h"
#include "formats/safetensors.h"
#include "model/lora.h"
#include "model/peft_adapter.h"
#include "model/peft_match.h"
#include "tools/gguf_vocab.h"
#include "tools/merge.h"

namespace ll {
namespace {

constexpr std::string_view kOrigin = "export-gguf";

// gguf-py's LlamaFileType for general.file_type.
uint32_t file_type_of(GgufOutType type) {
  switch (type) {
    case GgufOutType::F32:
      return 0;  // ALL_F32
    case GgufOutType::F16:
      return 1;  // MOSTLY_F16
    case GgufOutType::Q8_0:
      return 7;  // MOSTLY_Q8_0
    case GgufOutType::BF16:
      return 32;  // MOSTLY_BF16
  }
  return 1;
}

GgmlType ggml_type_of(GgufOutType type) {
  switch (type) {
    case GgufOutType::F32:
      return GgmlType::F32;
    case GgufOutType::F16:
      return GgmlType::F16;
    case GgufOutType::BF16:
      return GgmlType::BF16;
    case GgufOutType::Q8_0:
      return GgmlType::Q8_0;
  }
  return GgmlType::F16;
}

// Which of the RoPE'd projections a tensor is, for the row reordering.
enum class RopeRows { None, Q, K };

// One tensor of the output: its GGUF info and how to make its rows.
struct PlannedTensor {
  GgufTensorInfo info;
  RopeRows rope = RopeRows::None;
  // Fills `out` ([rows, cols] f32, PyTorch order, the rows already in GGUF order).
  std::function<void(std::span<float> out)> produce;
};

// The output type of a tensor of `shape` (see gguf_export.h: 1-D F32, Q8_0 -> F16 fallback).
GgmlType tensor_type(const std::vector<int64_t>& shape, GgufOutType outtype, size_t& kept_f16) {
  if (shape.size() < 2) return GgmlType::F32;
  const GgmlType wanted = ggml_type_of(outtype);
  if (ggml_type_fits_row(wanted, shape.back())) return wanted;
  ++kept_f16;
  return GgmlType::F16;
}

// Element i of a stored float tensor (the map's bytes may be unaligned).
float load_element(DType dtype, const std::byte* data, int64_t i) {
  if (dtype == DType::F32) {
    float value;
    std::memcpy(&value, data + i * 4, 4);
    return value;
  }
  uint16_t bits;
  std::memcpy(&bits, data + i * 2, 2);
  return dtype == DType::BF16 ? bf16_to_f32(bits) : f16_to_f32(bits);
}

// Rows of `out` [rows, cols] f32 from a source whose row s is `source_row(s)`, reordered by
// the RoPE permutation when asked.
void permute_rows(std::span<float> out, int64_t rows, int64_t cols, RopeRows rope, int64_t head_dim,
                  const std::function<void(int64_t, float*)>& source_row) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t from = rope == RopeRows::None ? r : gguf_rope_source_row(r, head_dim);
    source_row(from, out.data() + r * cols);
  }
}

// Writes the planned tensors, one at a time: f32 rows from produce(), encoded to the type.
GgufExportResult write_planned(const fs::path& output, const GgufMetadata& metadata,
                               std::vector<PlannedTensor>& planned,
                               const GgufExportOptions& options) {
  check(options.existing == StagedDir::Existing::Replace || !fs::exists(output), "output",
        output.string() + ": already exists (use --overwrite to replace it)");
  std::vector<GgufTensorInfo> infos;
  for (const PlannedTensor& tensor : planned) infos.push_back(tensor.info);
  GgufExportResult result;
  GgufWriter writer(output, metadata, infos);
  std::vector<float> values;     // one tensor [rows, cols] f32
  std::vector<std::byte> bytes;  // the same, encoded
  for (PlannedTensor& tensor : planned) {
    int64_t count = 1;
    for (int64_t dim : tensor.info.shape) count *= dim;
    values.assign(static_cast<size_t>(count), 0.0f);
    tensor.produce(values);
    bytes.resize(tensor.info.nbytes());
    ggml_quantize(tensor.info.type, values, bytes);
    writer.write_next(tensor.info.name, bytes);
    ++result.tensors;
    result.tensor_bytes += bytes.size();
  }
  writer.finish();
  return result;
}

void add_architecture(GgufMetadata& out, const LlamaConfig& c) {
  const auto u32 = [](int64_t value) { return static_cast<uint32_t>(value); };
  out.emplace_back("llama.context_length", u32(c.max_position_embeddings));
  out.emplace_back("llama.embedding_length", u32(c.hidden_size));
  out.emplace_back("llama.block_count", u32(c.num_hidden_layers));
  out.emplace_back("llama.feed_forward_length", u32(c.intermediate_size));
  out.emplace_back("llama.attention.head_count", u32(c.num_attention_heads));
  out.emplace_back("llama.attention.head_count_kv", u32(c.num_key_value_heads));
  out.emplace_back("llama.attention.key_length", u32(c.head_dim));
  out.emplace_back("llama.attention.value_length", u32(c.head_dim));
  out.emplace_back("llama.rope.freq_base", static_cast<float>(c.rope_theta));
  out.emplace_back("llama.attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  out.emplace_back("llama.vocab_size", u32(c.vocab_size));
  out.emplace_back("llama.rope.dimension_count", u32(c.head_dim));
}

// The HF checkpoint names and the GGUF names of one layer's tensors.
struct NamedTensor {
  std::string hf;
  std::string gguf;
  RopeRows rope = RopeRows::None;
};

std::vector<NamedTensor> llama_gguf_names(const LlamaConfig& config) {
  std::vector<NamedTensor> out;
  out.push_back({"model.embed_tokens.weight", "token_embd.weight"});
  const std::pair<const char*, const char*> linears[] = {
      {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"}, {"self_attn.o_proj", "attn_output"},
      {"mlp.gate_proj", "ffn_gate"},  {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const std::string hf = "model.layers." + std::to_string(layer) + ".";
    const std::string blk = "blk." + std::to_string(layer) + ".";
    out.push_back({hf + "input_layernorm.weight", blk + "attn_norm.weight"});
    for (const auto& [hf_name, gguf_name] : linears) {
      const std::string_view name = gguf_name;
      const RopeRows rope = name == "attn_q"   ? RopeRows::Q
                            : name == "attn_k" ? RopeRows::K
                                               : RopeRows::None;
      const bool bias = name.starts_with("attn") ? config.attention_bias : config.mlp_bias;
      out.push_back({hf + hf_name + ".weight", blk + gguf_name + ".weight", rope});
      if (bias) out.push_back({hf + hf_name + ".bias", blk + gguf_name + ".bias", rope});
    }
    out.push_back({hf + "post_attention_layernorm.weight", blk + "ffn_norm.weight"});
  }
  out.push_back({"model.norm.weight", "output_norm.weight"});
  if (!config.tie_word_embeddings) out.push_back({"lm_head.weight", "output.weight"});
  return out;
}

// llama.cpp runs MistralForCausalLM as its "llama" architecture (convert_hf_to_gguf.py registers
// it with LlamaModel); Qwen2 is its own "qwen2" architecture (no q/k row permutation, its
// pre-tokenizer), which we do not write yet.
void check_gguf_architecture(const LlamaConfig& config, const fs::path& config_dir) {
  check(config.architecture != Architecture::Qwen2, kOrigin,
        (config_dir / "config.json").string() +
            ": Qwen2ForCausalLM cannot be exported to GGUF yet (llama.cpp's 'qwen2' "
            "architecture is planned); LlamaForCausalLM and MistralForCausalLM export");
}

std::string folder_name(const fs::path& dir) {
  return dir.filename().empty() ? dir.parent_path().filename().string() : dir.filename().string();
}

// The row range of one q/k head group: q has num_attention_heads heads, k num_key_value_heads.
void check_rope_rows(const std::vector<int64_t>& shape, const LlamaConfig& config,
                     const std::string& name) {
  check(!shape.empty() && config.head_dim % 2 == 0 && shape[0] % config.head_dim == 0, kOrigin,
        name + ": " + shape_text(shape) + " cannot be reordered for llama.cpp's RoPE (head_dim " +
            std::to_string(config.head_dim) + " must be even and divide the rows)");
}

}  // namespace

GgufOutType parse_gguf_outtype(std::string_view text) {
  if (text == "f32") return GgufOutType::F32;
  if (text == "f16") return GgufOutType::F16;
  if (text == "bf16") return GgufOutType::BF16;
  if (text == "q8_0") return GgufOutType::Q8_0;
  fail(kOrigin, "--outtype " + quote_name(text) + " is not one of f32, f16, bf16, q8_0");
}

std::string_view gguf_outtype_name(GgufOutType type) {
  switch (type) {
    case GgufOutType::F32:
      return "f32";
    case GgufOutType::F16:
      return "f16";
    case GgufOutType::BF16:
      return "bf16";
    case GgufOutType::Q8_0:
      return "q8_0";
  }
  return "f16";
}

int64_t gguf_rope_source_row(int64_t row, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  const int64_t head = row / head_dim;
  const int64_t within = row % head_dim;  // 2i + j
  return head * head_dim + (within % 2) * half + within / 2;
}

std::vector<float> gguf_llama3_rope_factors(const LlamaConfig& config) {
  const RopeScaling& s = *config.rope_scaling;
  const int64_t dim = config.head_dim;
  // The frequencies in fp32 as torch computes them, the rest in double like Python's floats.
  // original_max_position_embeddings comes from rope_scaling, where transformers reads it
  // (llama.cpp's converter looks at the top level of config.json and falls back to 8192,
  // which is the same number for the Llama-3.1 / 3.2 releases).
  const double old_context = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / s.low_freq_factor;
  const double high_freq_wavelen = old_context / s.high_freq_factor;
  std::vector<float> factors;  // [head_dim/2] f32
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    const float freq = 1.0f / std::pow(static_cast<float>(config.rope_theta), exponent);
    const double wavelen = 2.0 * std::numbers::pi / static_cast<double>(freq);
    double factor = 1.0;
    if (wavelen < high_freq_wavelen) {
      factor = 1.0;
    } else if (wavelen > low_freq_wavelen) {
      factor = s.factor;
    } else {
      const double smooth =
          (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      factor = 1.0 / ((1.0 - smooth) / s.factor + smooth);
    }
    factors.push_back(static_cast<float>(factor));
  }
  return factors;
}

GgufExportResult export_model_gguf(const fs::path& model_dir, const fs::path& output,
                                   const GgufExportOptions& options) {
  const LlamaConfig config = load_llama_config(model_dir);
  check_gguf_architecture(config, model_dir);
  GgufMetadata metadata;
  metadata.emplace_back("general.architecture", std::string("llama"));
  metadata.emplace_back("general.type", std::string("model"));
  metadata.emplace_back("general.name",
                        options.name.empty() ? folder_name(model_dir) : options.name);
  add_architecture(metadata, config);
  metadata.emplace_back("general.file_type", file_type_of(options.outtype));
  metadata.emplace_back("general.quantization_version", uint32_t{2});
  for (auto& entry : gguf_tokenizer_metadata(model_dir, config)) {
    metadata.push_back(std::move(entry));
  }

  const SafetensorsModel model = SafetensorsModel::open(model_dir);
  GgufExportResult result;
  std::vector<PlannedTensor> planned;
  if (config.rope_scaling && config.rope_scaling->rope_type == "llama3") {
    PlannedTensor rope;
    rope.info = {"rope_freqs.weight", {config.head_dim / 2}, GgmlType::F32};
    const std::vector<float> factors = gguf_llama3_rope_factors(config);
    rope.produce = [factors](std::span<float> out) {
      std::copy(factors.begin(), factors.end(), out.begin());
    };
    planned.push_back(std::move(rope));
  }
  std::map<std::string, std::vector<int64_t>> expected;
  for (auto& [name, shape] : llama_tensor_shapes(config)) expected[name] = shape;
  for (const NamedTensor& named : llama_gguf_names(config)) {
    const std::string where = model_dir.string() + ": tensor " + quote_name(named.hf);
    check(model.contains(named.hf), kOrigin, where + " is missing from the model weights");
    const TensorInfo& info = model.info(named.hf);
    check(info.shape == expected[named.hf] && dtype_is_float(info.dtype), kOrigin,
          where + " is " + std::string(dtype_name(info.dtype)) + " " + shape_text(info.shape) +
              " but config.json implies a float tensor " + shape_text(expected[named.hf]));
    if (named.rope != RopeRows::None) check_rope_rows(info.shape, config, where);
    PlannedTensor tensor;
    tensor.info = {named.gguf, info.shape,
                   tensor_type(info.shape, options.outtype, result.kept_f16)};
    tensor.rope = named.rope;
    const int64_t rows = info.shape[0];
    const int64_t cols = info.shape.size() > 1 ? info.shape[1] : 1;
    const std::string hf = named.hf;
    const DType dtype = info.dtype;
    const int64_t head_dim = config.head_dim;
    tensor.produce = [&model, hf, dtype, rows, cols, rope = named.rope,
                      head_dim](std::span<float> out) {
      const std::byte* data = model.data(hf).data();
      permute_rows(out, rows, cols, rope, head_dim, [&](int64_t row, float* dst) {
        for (int64_t i = 0; i < cols; ++i) dst[i] = load_element(dtype, data, row * cols + i);
      });
    };
    planned.push_back(std::move(tensor));
  }
  const size_t kept_f16 = result.kept_f16;
  result = write_planned(output, metadata, planned, options);
  result.kept_f16 = kept_f16;
  result.vocab_size = config.vocab_size;
  return result;
}

GgufExportResult export_merged_gguf(const fs::path& base, const fs::path& adapter,
                                    const fs::path& output, const GgufExportOptions& options) {
  check(options.existing == StagedDir::Existing::Replace || !fs::exists(output), "output",
        output.string() + ": already exists (use --overwrite to replace it)");
  check_gguf_architecture(load_llama_config(base), base);  // before the merge's work
  // A scratch folder beside the output (same disk), never committed: removed on return.
  StagedDir scratch(output, StagedDir::Existing::Replace);
  merge_adapter_into(base, adapter, scratch.path(), MergeOptions{});
  GgufExportOptions named = options;
  if (named.name.empty()) named.name = folder_name(base) + "+" + folder_name(adapter);
  return export_model_gguf(scratch.path(), output, named);
}

GgufExportResult export_adapter_gguf(const fs::path& adapter, const fs::path& base_config_dir,
                                     const fs::path& output, const GgufExportOptions& options) {
  const LlamaConfig config = load_llama_config(base_config_dir);
  check_gguf_architecture(config, base_config_dir);
  const LoraAdapter lora = load_peft_adapter(adapter, config);
  // llama.cpp applies (alpha / r) · B·A with r read from each module's tensors and one alpha
  // for the whole file: alpha = scale · r must be the same for every module.
  std::optional<double> alpha;
  for_each_lora_matrix(lora, [&](int64_t layer, LoraTarget target, const LoraMatrix& m) {
    const double module_alpha = m.scale * static_cast<double>(m.r);
    if (!alpha) alpha = module_alpha;
    check(std::fabs(module_alpha - *alpha) <= 1e-12 * *alpha, kOrigin,
          (adapter / "adapter_config.json").string() + ": alpha_pattern/rank_pattern give " +
              peft_module_name(layer, target) + " another alpha/r ratio than the rest (scale*r " +
              std::to_string(module_alpha) + " vs " + std::to_string(*alpha) +
              "), which a GGUF adapter's one adapter.lora.alpha "
              "cannot hold");
  });
  GgufMetadata metadata;
  metadata.emplace_back("general.architecture", std::string("llama"));
  metadata.emplace_back("general.type", std::string("adapter"));
  metadata.emplace_back("general.name", options.name.empty() ? folder_name(adapter) : options.name);
  metadata.emplace_back("adapter.type", std::string("lora"));
  metadata.emplace_back("adapter.lora.alpha", static_cast<float>(alpha.value_or(0.0)));
  metadata.emplace_back("general.file_type", file_type_of(options.outtype));
  metadata.emplace_back("general.quantization_version", uint32_t{2});

  const std::pair<LoraTarget, const char*> names[] = {
      {LoraTarget::Q, "attn_q"},      {LoraTarget::K, "attn_k"},      {LoraTarget::V, "attn_v"},
      {LoraTarget::O, "attn_output"}, {LoraTarget::Gate, "ffn_gate"}, {LoraTarget::Up, "ffn_up"},
      {LoraTarget::Down, "ffn_down"}};
  GgufExportResult result;
  std::vector<PlannedTensor> planned;
  for (size_t layer = 0; layer < lora.layers().size(); ++layer) {
    for (const auto& [target, gguf_name] : names) {
      const std::optional<LoraMatrix>& matrix = lora.layers()[layer][static_cast<size_t>(target)];
      if (!matrix) continue;
      const std::string base = "blk." + std::to_string(layer) + "." + gguf_name + ".weight";
      const RopeRows rope = target == LoraTarget::Q   ? RopeRows::Q
                            : target == LoraTarget::K ? RopeRows::K
                                                      : RopeRows::None;
      const std::vector<int64_t> a_shape = {matrix->r, matrix->in};
      const std::vector<int64_t> b_shape = {matrix->out, matrix->r};
      if (rope != RopeRows::None) check_rope_rows(b_shape, config, base);
      PlannedTensor a;
      a.info = {base + ".lora_a", a_shape, tensor_type(a_shape, options.outtype, result.kept_f16)};
      const std::span<const float> a_values = matrix->a;
      a.produce = [a_values](std::span<float> out) {
        std::copy(a_values.begin(), a_values.end(), out.begin());
      };
      PlannedTensor b;
      b.info = {base + ".lora_b", b_shape, tensor_type(b_shape, options.outtype, result.kept_f16)};
      b.rope = rope;
      const std::span<const float> b_values = matrix->b;
      const int64_t rows = matrix->out;
      const int64_t r = matrix->r;
      const int64_t head_dim = config.head_dim;
      b.produce = [b_values, rows, r, rope, head_dim](std::span<float> out) {
        permute_rows(out, rows, r, rope, head_dim, [&](int64_t row, float* dst) {
          std::copy_n(b_values.data() + row * r, r, dst);
        });
      };
      planned.push_back(std::move(a));
      planned.push_back(std::move(b));
    }
  }
  check(!planned.empty(), kOrigin, adapter.string() + ": the adapter has no LoRA tensors");
  const size_t kept_f16 = result.kept_f16;
  result = write_planned(output, metadata, planned, options);
  result.kept_f16 = kept_f16;
  return result;
}

}  // namespace ll
