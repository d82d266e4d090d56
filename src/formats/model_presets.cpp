// See model_presets.h. The big presets copy their published config.json files field by
// field (shapes, RoPE, norms, initializer_range), so a folder `init` writes has the same
// parameter count and numerics as the real model: 134,515,008 (SmolLM2-135M),
// 1,235,814,400 (Llama-3.2-1B), 8,030,261,248 (Llama-3-8B).
#include "formats/model_presets.h"

#include <vector>

#include "core/error.h"
#include "core/text.h"

namespace ll {
namespace {

struct Shape {
  int64_t vocab, hidden, intermediate, layers, heads, kv_heads, max_position;
  double rope_theta, rms_norm_eps, initializer_range;
  bool tied;
};

LlamaConfig make_config(const Shape& s) {
  LlamaConfig c;
  c.vocab_size = s.vocab;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.intermediate;
  c.num_hidden_layers = s.layers;
  c.num_attention_heads = s.heads;
  c.num_key_value_heads = s.kv_heads;
  c.head_dim = s.hidden / s.heads;
  c.max_position_embeddings = s.max_position;
  c.rope_theta = s.rope_theta;
  c.rms_norm_eps = s.rms_norm_eps;
  c.tie_word_embeddings = s.tied;
  c.torch_dtype = "bfloat16";
  // Fields LlamaConfig does not model, as the published configs have them;
  // llama_config_to_json writes them back from `raw`.
  c.raw = {{"attention_dropout", 0.0},
           {"initializer_range", s.initializer_range},
           {"pretraining_tp", 1},
           {"use_cache", true}};
  return c;
}

std::vector<ModelPreset> build_presets() {
  std::vector<ModelPreset> presets;

  // vocab 1,024 is a placeholder: tiny always takes its tokenizer's size.
  // initializer_range 0.25, not transformers' 0.02: with hidden 64 an LM-head row of std
  // 0.02 has norm 0.16 and the normed hidden state norm 8, so no logit can exceed ~1.3 and
  // no adapter could make the frozen model confident (LoRA training plateaued at 5.8 nats
  // per token on the demo data); at 0.25 it reaches 1.1 (scripts/demo). Large presets keep
  // their models' own values.
  ModelPreset tiny{"tiny", "2 layers, hidden 64: for tests and the demo (vocab = tokenizer's)",
                   make_config({1024, 64, 176, 2, 4, 2, 2048, 500000.0, 1e-5, 0.25, false}),
                   PresetVocab::FromTokenizer, 1024};
  presets.push_back(std::move(tiny));

  // HuggingFaceTB/SmolLM2-135M: initializer_range is 1/24 there, not transformers' 0.02.
  ModelPreset smol{
      "smol-135m", "SmolLM2-135M shape: 30 layers, hidden 576, 9/3 heads",
      make_config({49152, 576, 1536, 30, 9, 3, 8192, 100000.0, 1e-5, 0.041666666666666664, true}),
      PresetVocab::Fixed, 1024};
  presets.push_back(std::move(smol));

  // meta-llama/Llama-3.2-1B: llama3 RoPE scaling, tied embeddings.
  ModelPreset llama1b{
      "llama3-1b", "Llama-3.2-1B shape: 16 layers, hidden 2048, 32/8 heads",
      make_config({128256, 2048, 8192, 16, 32, 8, 131072, 500000.0, 1e-5, 0.02, true}),
      PresetVocab::Fixed, 1024};
  llama1b.config.rope_scaling = RopeScaling{"llama3", 32.0, 1.0, 4.0, 8192};
  presets.push_back(std::move(llama1b));

  // meta-llama/Meta-Llama-3-8B: plain RoPE, separate lm_head.
  ModelPreset llama8b{
      "llama3-8b", "Llama-3-8B shape: 32 layers, hidden 4096, 32/8 heads",
      make_config({128256, 4096, 14336, 32, 32, 8, 8192, 500000.0, 1e-5, 0.02, false}),
      PresetVocab::Fixed, 1024};
  presets.push_back(std::move(llama8b));
  return presets;
}

}  // namespace

std::span<const ModelPreset> model_presets() {
  static const std::vector<ModelPreset> presets = build_presets();
  return presets;
}

const ModelPreset& find_model_preset(std::string_view name) {
  std::string known;
  for (const ModelPreset& preset : model_presets()) {
    if (preset.name == name) return preset;
    known += (known.empty() ? "" : ", ") + preset.name;
  }
  fail("preset", "unknown model preset '" + std::string(name) + "' (known: " + known + ")");
}

LlamaConfig preset_config_for_tokenizer(const ModelPreset& preset, int64_t tokenizer_vocab_size) {
  check(tokenizer_vocab_size > 0, "preset",
        "tokenizer vocab size must be positive, got " + std::to_string(tokenizer_vocab_size));
  LlamaConfig config = preset.config;
  if (preset.vocab == PresetVocab::FromTokenizer) {
    config.vocab_size = tokenizer_vocab_size;
  } else if (tokenizer_vocab_size > config.vocab_size) {
    fail("preset", "the tokenizer has " +
                       format_count(static_cast<uint64_t>(tokenizer_vocab_size)) +
                       " tokens but preset '" + preset.name + "' has vocab_size " +
                       format_count(static_cast<uint64_t>(config.vocab_size)) +
                       " (token ids past the embedding would be out of range)");
  }
  return config;
}

}  // namespace ll
