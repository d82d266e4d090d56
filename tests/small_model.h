// A Llama shape small enough for exhaustive tests (GQA: 4 heads over 2 kv heads), shared by
// the model and train tests. Header-only: only binaries that link ll_formats include it.
#pragma once

#include "formats/llama_config.h"

namespace ll::test {

inline LlamaConfig small_llama_config() {
  LlamaConfig c;
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  return c;
}

}  // namespace ll::test
