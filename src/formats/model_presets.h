// Named model shapes for `llama-lora init` and the benchmarks: the Hugging Face configs of
// SmolLM2-135M, Llama-3.2-1B and Llama-3-8B (BENCHMARK.md's workloads), and `tiny`, a
// two-layer model small enough for unit tests and the demo.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "formats/llama_config.h"

namespace ll {

// How a preset's vocab_size relates to the tokenizer the model folder gets.
enum class PresetVocab {
  Fixed,          // the published model's vocab; a larger tokenizer is an error
  FromTokenizer,  // exactly the tokenizer's vocab size (tiny)
};

struct ModelPreset {
  std::string name;
  std::string summary;
  LlamaConfig config;  // vocab_size: the published one (Fixed) or a placeholder (FromTokenizer)
  PresetVocab vocab = PresetVocab::Fixed;
  // Vocab size (special tokens included) of the tokenizer `init` trains when none is given.
  int32_t builtin_tokenizer_vocab = 1024;
};

std::span<const ModelPreset> model_presets();  // tiny, smol-135m, llama3-1b, llama3-8b
// Throws "[preset] unknown model preset 'x' (known: tiny, ...)".
const ModelPreset& find_model_preset(std::string_view name);

// The preset's config with vocab_size fitted to a tokenizer of `tokenizer_vocab_size` tokens
// (see PresetVocab). Token ids (bos/eos) are left for the caller to set.
LlamaConfig preset_config_for_tokenizer(const ModelPreset& preset, int64_t tokenizer_vocab_size);

}  // namespace ll
