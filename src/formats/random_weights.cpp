// See random_weights.h.
#include "formats/random_weights.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <thread>

#include "core/dtype.h"
#include "core/error.h"
#include "core/random.h"
#include "formats/safetensors.h"

namespace ll {
namespace {

constexpr std::string_view kOrigin = "random-weights";
constexpr size_t kChunkElements = size_t{1} << 20;  // even, so Box-Muller pairs stay inside

// Fills out[begin, end) of a tensor's chunk `chunk` (begin = chunk * kChunkElements).
void fill_chunk(uint16_t* out, size_t count, float stddev, uint64_t chunk_seed) {
  std::mt19937_64 engine(chunk_seed);
  constexpr float kInv24 = 1.0f / 16777216.0f;  // 2^-24
  constexpr float kTwoPi = 6.28318530717958647692f;
  for (size_t i = 0; i < count; i += 2) {
    const uint64_t bits = engine();
    // u1 in (0, 1] so log(u1) is finite; u2 in [0, 1). 24 bits each: exact in a float.
    const float u1 = static_cast<float>((bits >> 40) + 1) * kInv24;
    const float u2 = static_cast<float>((bits >> 16) & 0xffffffu) * kInv24;
    const float radius = stddev * std::sqrt(-2.0f * std::log(u1));
    const float angle = kTwoPi * u2;
    out[i] = f32_to_bf16(radius * std::cos(angle));
    if (i + 1 < count) out[i + 1] = f32_to_bf16(radius * std::sin(angle));
  }
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

void fill_normal_bf16(std::span<uint16_t> out, float stddev, uint64_t seed, std::string_view name,
                      unsigned threads) {
  const uint64_t tensor_seed = splitmix64(seed ^ splitmix64(fnv1a64(name)));
  const size_t chunks = (out.size() + kChunkElements - 1) / kChunkElements;
  std::atomic<size_t> next{0};
  const auto work = [&] {
    for (size_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
      const size_t begin = c * kChunkElements;
      const size_t count = std::min(kChunkElements, out.size() - begin);
      fill_chunk(out.data() + begin, count, stddev, splitmix64(tensor_seed + c));
    }
  };
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  const size_t helpers = std::min<size_t>(threads, chunks) - (chunks > 0 ? 1 : 0);
  std::vector<std::thread> pool;
  pool.reserve(helpers);
  for (size_t t = 0; t < helpers; ++t) pool.emplace_back(work);
  work();
  for (std::thread& thread : pool) thread.join();
}

WrittenWeights write_random_llama_weights(const fs::path& dir, const LlamaConfig& config,
                                          const RandomWeightsOptions& options) {
  const double initializer_range =
      config.raw.is_object() ? config.raw.value("initializer_range", 0.02) : 0.02;
  check(initializer_range > 0 && std::isfinite(initializer_range), kOrigin,
        "initializer_range must be a positive number");
  const auto shapes = llama_tensor_shapes(config);
  std::vector<TensorInfo> layout;
  layout.reserve(shapes.size());
  WrittenWeights result;
  for (const auto& [name, shape] : shapes) {
    TensorInfo info;
    info.name = name;
    info.dtype = DType::BF16;
    info.shape = shape;
    info.nbytes = static_cast<uint64_t>(info.numel()) * 2;
    result.tensor_bytes += info.nbytes;
    result.parameters += info.numel();
    layout.push_back(std::move(info));
  }

  uint64_t bytes_done = 0;
  std::vector<uint16_t> values;  // [numel] bf16: one tensor at a time
  const auto produce = [&](size_t i) {
    const std::string& name = layout[i].name;
    values.resize(static_cast<size_t>(layout[i].numel()));
    if (ends_with(name, "norm.weight")) {
      std::fill(values.begin(), values.end(), f32_to_bf16(1.0f));  // RMSNorm: ones
    } else if (ends_with(name, ".bias")) {
      std::fill(values.begin(), values.end(), f32_to_bf16(0.0f));
    } else {  // Linear and Embedding weights
      fill_normal_bf16(values, static_cast<float>(initializer_range), options.seed, name,
                       options.threads);
    }
    bytes_done += values.size() * sizeof(uint16_t);
    return std::as_bytes(std::span<const uint16_t>(values));
  };
  const auto on_file = [&](const std::string& file) {
    if (options.on_file_written) options.on_file_written(file, bytes_done, result.tensor_bytes);
  };
  result.files = write_sharded_safetensors_streaming(dir, layout, options.max_shard_bytes, {},
                                                     produce, on_file);
  return result;
}

}  // namespace ll
