// Random weights for a LlamaForCausalLM of any shape, as `llama-lora init` writes them:
// initialised like transformers' LlamaPreTrainedModel._init_weights (Linear and Embedding
// weights ~ normal(0, initializer_range), biases 0, RMSNorm weights 1), stored in bf16 in
// transformers' sharded safetensors layout, generated and written one tensor at a time so
// an 8B model (16 GB) never has to fit in memory.
//
// Determinism: tensor values depend only on (seed, tensor name, element index), not on the
// thread count or on which other tensors exist. Each tensor is cut into chunks of 2^20
// elements; chunk c of tensor `name` draws from std::mt19937_64 seeded with
// splitmix64(seed, fnv1a64(name), c), turning each 64-bit draw into two normals by
// Box-Muller (24-bit uniforms, float math; then rounded to bf16). std::mt19937_64 is fully
// specified by the C++ standard; std::normal_distribution is not, hence our own transform.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/file.h"
#include "formats/llama_config.h"

namespace ll {

// transformers' save_pretrained default max_shard_size, "5GB" = 5 * 10^9 bytes.
inline constexpr uint64_t kHfMaxShardBytes = 5'000'000'000ull;

struct RandomWeightsOptions {
  uint64_t seed = 0;
  uint64_t max_shard_bytes = kHfMaxShardBytes;
  unsigned threads = 0;  // 0: std::thread::hardware_concurrency()
  // Called after each file is complete (name inside the folder, bytes written so far).
  std::function<void(const std::string& file, uint64_t bytes_done, uint64_t bytes_total)>
      on_file_written;
};

struct WrittenWeights {
  std::vector<std::string> files;  // in writing order; the index file last when sharded
  uint64_t tensor_bytes = 0;       // sum of tensor bytes (the index's total_size)
  int64_t parameters = 0;
};

// Writes the weights of `config` into `dir` as model.safetensors, or
// model-0000i-of-0000n.safetensors + model.safetensors.index.json past max_shard_bytes
// (write_sharded_safetensors_streaming: the same files as save_pretrained).
WrittenWeights write_random_llama_weights(const fs::path& dir, const LlamaConfig& config,
                                          const RandomWeightsOptions& options);

// The normal(0, std) values of tensor `name` for `seed`, rounded to bf16 (see the top of
// this file); `out.size()` is the tensor's element count.
void fill_normal_bf16(std::span<uint16_t> out, float std, uint64_t seed, std::string_view name,
                      unsigned threads);

}  // namespace ll
