// Generation speed with the KV cache (src/model/llama_generate.h) on the smol-135m shape
// (random bf16 weights from `llama-lora init --preset smol-135m`, fp32 compute): a batch of
// prompts of random token ids is prefilled in one extend call, then every sequence advances
// one greedy token per decode step for new_tokens - 1 steps (the first new token comes from
// the prefill's logits). Prints one JSON line:
//   prefill_tokens_per_s = batch · prompt_len / prefill seconds
//   decode_tokens_per_s  = batch · (new_tokens - 1) / decode seconds
// medians over the runs after one warm-up run. bench/peers/hf_generate.py measures
// transformers' generate the same way.
//
//   ./build/release/bench/bench_generate [--model DIR] [--batch 4] [--prompt_len 128]
//                                        [--new_tokens 64] [--runs 3]
// Without --model it uses build/bench-cache/smol-135m (made with the llama-lora binary next
// to this one when missing, as bench/train_workload.py does). OMP_NUM_THREADS sets threads.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "model/llama_generate.h"
#include "model/sampling.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Settings {
  std::string model;
  int64_t batch = 4;
  int64_t prompt_len = 128;
  int64_t new_tokens = 64;
  int runs = 3;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

Settings parse(int argc, char** argv) {
  Settings s;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--model") {
      s.model = value;
    } else if (flag == "--batch") {
      s.batch = std::stoll(value);
    } else if (flag == "--prompt_len") {
      s.prompt_len = std::stoll(value);
    } else if (flag == "--new_tokens") {
      s.new_tokens = std::stoll(value);
    } else if (flag == "--runs") {
      s.runs = std::stoi(value);
    } else {
      throw std::runtime_error(std::string("unknown flag ") + flag);
    }
  }
  if (s.batch < 1 || s.prompt_len < 1 || s.new_tokens < 2 || s.runs < 1) {
    throw std::runtime_error("need batch, prompt_len, runs >= 1 and new_tokens >= 2");
  }
  return s;
}

// build/bench-cache/smol-135m, made by `llama-lora init` when missing.
std::string default_model() {
  const fs::path dir = fs::path("build") / "bench-cache" / "smol-135m";
  if (fs::exists(dir / "config.json")) return dir.string();
  const fs::path binary =
      fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "llama-lora";
  fs::create_directories(dir.parent_path());
  const std::string command = std::string("'") + binary.string() +
                              "' init --preset smol-135m -o '" + dir.string() + "' > /dev/null";
  if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
  return dir.string();
}

struct Timing {
  double prefill_s;
  double decode_s;
};

Timing run_once(ll::LlamaGenerator& generator, const Settings& s, uint32_t seed) {
  const int64_t vocab = generator.config().vocab_size;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(vocab - 1));
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(s.batch));
  for (auto& prompt : prompts) {
    for (int64_t i = 0; i < s.prompt_len; ++i) prompt.push_back(pick(rng));
  }
  std::vector<ll::KvCache> caches;
  for (int64_t b = 0; b < s.batch; ++b) {
    caches.push_back(generator.new_cache(s.prompt_len + s.new_tokens));
  }
  std::vector<ll::SequenceStep> steps;
  for (int64_t b = 0; b < s.batch; ++b) {
    steps.push_back({&caches[static_cast<size_t>(b)], prompts[static_cast<size_t>(b)]});
  }
  std::vector<int32_t> next(static_cast<size_t>(s.batch));
  const auto pick_greedy = [&](const std::vector<float>& logits) {
    for (int64_t b = 0; b < s.batch; ++b) {
      next[static_cast<size_t>(b)] = ll::argmax_token(
          std::span<const float>(logits.data() + b * vocab, static_cast<size_t>(vocab)));
    }
  };

  const auto prefill_start = Clock::now();
  pick_greedy(generator.extend(steps));
  const double prefill_s = seconds_since(prefill_start);

  const auto decode_start = Clock::now();
  for (int64_t step = 1; step < s.new_tokens; ++step) {
    for (int64_t b = 0; b < s.batch; ++b) {
      steps[static_cast<size_t>(b)].tokens = {&next[static_cast<size_t>(b)], 1};
    }
    pick_greedy(generator.extend(steps));
  }
  return {prefill_s, seconds_since(decode_start)};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Settings s = parse(argc, argv);
    if (s.model.empty()) s.model = default_model();
    const ll::LlamaWeights weights = ll::load_llama_weights(s.model);
    ll::LlamaGenerator generator(weights, nullptr);
    run_once(generator, s, 0);  // warm-up: page in the weights, grow the buffers
    std::vector<double> prefill, decode;
    for (int r = 0; r < s.runs; ++r) {
      const Timing t = run_once(generator, s, static_cast<uint32_t>(r + 1));
      prefill.push_back(static_cast<double>(s.batch * s.prompt_len) / t.prefill_s);
      decode.push_back(static_cast<double>(s.batch * (s.new_tokens - 1)) / t.decode_s);
    }
    std::printf(
        "{\"workload\": \"generate-smol-135m\", \"impl\": \"llama-lora\", \"device\": \"cpu\", "
        "\"prefill_tokens_per_s\": %.1f, \"decode_tokens_per_s\": %.1f, \"batch\": %lld, "
        "\"prompt_len\": %lld, \"new_tokens\": %lld, \"runs\": %d, \"threads\": %d, "
        "\"compute\": \"bf16 weights, fp32 compute\"}\n",
        median(prefill), median(decode), static_cast<long long>(s.batch),
        static_cast<long long>(s.prompt_len), static_cast<long long>(s.new_tokens), s.runs,
        omp_get_max_threads());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_generate: %s\n", error.what());
    return 1;
  }
  return 0;
}
