// merge (tools/merge.h) on the golden fixtures (transformers + peft models whose LoRA B are
// non-zero): the merged fp32 model gives the logits of base + adapter; a bf16 base merges to
// exactly round_bf16(W + fp32 delta) element by element; a small max_shard_size gives
// save_pretrained's shards + index that our loader reads back; tied embeddings stay tied;
// and an adapter for another model shape, or an existing output folder, is refused with one
// line and no output left behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file.h"
#include "formats/safetensors.h"
#include "model/llama_model.h"
#include "model/peft_adapter.h"
#include "safetensors_test_util.h"
#include "test_util.h"
#include "tools/merge.h"

namespace ll {
namespace {

fs::path golden(const std::string& name) {
  return test::fixtures() / "golden" / name;
}

// 2 rows x 11 tokens of fixed ids below the fixtures' vocab (97).
TokenBatch prompts() {
  TokenBatch batch;
  batch.rows = 2;
  batch.seq_len = 11;
  for (int64_t row = 0; row < batch.rows; ++row) {
    for (int64_t t = 0; t < batch.seq_len; ++t) {
      batch.input_ids.push_back(static_cast<int32_t>((3 + row * 41 + t * 17) % 97));
      batch.targets.push_back(-100);
      batch.positions.push_back(static_cast<int32_t>(t));
    }
    batch.document_starts.push_back({0});
  }
  return batch;
}

std::vector<float> logits_of(const fs::path& model_dir, const fs::path& adapter_dir) {
  const LlamaWeights weights = load_llama_weights(model_dir);
  LoraAdapter adapter;
  if (!adapter_dir.empty()) adapter = load_peft_adapter(adapter_dir, weights.config);
  LlamaLoraModel model(weights, adapter_dir.empty() ? nullptr : &adapter, ModelOptions{});
  return model.forward_logits(prompts());
}

// max |a - b| / max |b|
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  double scale = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return worst / scale;
}

std::set<std::string> file_names(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename());
  return names;
}

// Tolerance 1e-5 of the largest logit: both sides compute in fp32 and differ only in rounding
// order (x·(W + s·B·A)ᵀ against x·Wᵀ + s·(x·Aᵀ)·Bᵀ, plus W + delta rounded to fp32 once), which
// moves logits by ~1e-7 relative through two layers; a wrong scale (alpha instead of alpha/r),
// a transposed or misplaced delta, or a missing projection moves them by >1e-3 (checked below:
// the base model alone is that far away).
TEST(Merge, Fp32MergedLogitsEqualBasePlusAdapter) {
  for (const char* config : {"gqa_tied", "llama3_rope_headdim"}) {
    SCOPED_TRACE(config);
    test::TempDir tmp;
    const fs::path base = golden(config) / "model";
    const fs::path adapter = golden(config) / "adapter";
    const MergeResult result = merge_adapter(base, adapter, tmp / "merged", MergeOptions{});
    EXPECT_EQ(result.merged_tensors, 14u);  // 2 layers x 7 projections
    EXPECT_EQ(result.weight_files, std::vector<std::string>{"model.safetensors"});

    const std::vector<float> reference = logits_of(base, adapter);
    const double error = relative_error(logits_of(tmp / "merged", {}), reference);
    EXPECT_LE(error, 1e-5);
    EXPECT_GT(relative_error(logits_of(base, {}), reference), 1e-3);
    std::printf("  %s: merged vs base + adapter logits rel err %.2e\n", config, error);

    // A plain HF folder: config and generation config copied as they are, tensors in the
    // base's dtype, the untouched ones byte for byte.
    EXPECT_EQ(
        file_names(tmp / "merged"),
        (std::set<std::string>{"config.json", "generation_config.json", "model.safetensors"}));
    EXPECT_EQ(read_file(tmp / "merged" / "config.json"), read_file(base / "config.json"));
    const SafetensorsModel ours = SafetensorsModel::open(tmp / "merged");
    const SafetensorsModel theirs = SafetensorsModel::open(base);
    EXPECT_EQ(ours.tensor_names(), theirs.tensor_names());  // tied: no lm_head in either
    for (const char* name : {"model.embed_tokens.weight", "model.norm.weight",
                             "model.layers.1.post_attention_layernorm.weight"}) {
      const auto a = ours.data(name);
      const auto b = theirs.data(name);
      ASSERT_EQ(a.size(), b.size());
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size()), 0) << name;
    }
    EXPECT_EQ(ours.contains("lm_head.weight"), std::string(config) != "gqa_tied");
  }
}

// Against peft itself: tests/fixtures/golden/<cfg>/merged/ holds peft 0.13.2's
// merge_and_unload + save_pretrained of the same base and adapter, with that model's logits
// (scripts/fixtures/make_tool_fixtures.py). Our merged tensors must equal peft's within
// 1e-6 of each tensor's largest value (fp32: both compute W + scale·B·A and differ only in
// the order of the r = 4 products, ~1e-7 relative; bf16: both round W + fp32 delta once, so
// at most an element whose fp32 sums differ in the last bit lands on the other side of a
// bf16 rounding boundary, one bf16 ulp: allowed on at most 0.1% of the elements), and the
// merged model's logits (our forward of our merged folder) must equal peft-merged
// transformers' logits within 1e-5 relative (the golden tests' fp32 bound).
TEST(Merge, EqualsPeftMergeAndUnload) {
  for (const auto& [config, adapter_config] :
       {std::pair<std::string, std::string>{"gqa_tied", "gqa_tied"},
        {"llama3_rope_headdim", "llama3_rope_headdim"},
        {"llama3_rope_headdim_bf16", "llama3_rope_headdim"}}) {
    SCOPED_TRACE(config);
    test::TempDir tmp;
    merge_adapter(golden(config) / "model", golden(adapter_config) / "adapter", tmp / "merged",
                  MergeOptions{});
    const SafetensorsModel ours = SafetensorsModel::open(tmp / "merged");
    const SafetensorsModel peft = SafetensorsModel::open(golden(config) / "merged");
    ASSERT_EQ(ours.tensor_names(), peft.tensor_names());
    const bool bf16 = config.ends_with("bf16");
    size_t elements = 0;
    size_t off_by_rounding = 0;
    for (const std::string& name : ours.tensor_names()) {
      EXPECT_EQ(ours.info(name).dtype, peft.info(name).dtype) << name;
      const std::vector<float> a = ours.read_f32(name);
      const std::vector<float> b = peft.read_f32(name);
      ASSERT_EQ(a.size(), b.size()) << name;
      float largest = 0;
      for (float v : b) largest = std::max(largest, std::fabs(v));
      for (size_t i = 0; i < a.size(); ++i) {
        const float diff = std::fabs(a[i] - b[i]);
        if (bf16 && diff > 0) {
          ++off_by_rounding;
          // one bf16 ulp of the value: 2^(exponent - 7)
          EXPECT_LE(diff, std::ldexp(1.0f, std::ilogb(std::fabs(b[i])) - 7))
              << name << "[" << i << "]";
        } else if (!bf16) {
          ASSERT_LE(diff, 1e-6f * largest) << name << "[" << i << "]";
        }
      }
      elements += a.size();
    }
    if (bf16) {
      EXPECT_LE(off_by_rounding * 1000, elements) << off_by_rounding << " of " << elements;
    }

    const SafetensorsModel expected =
        SafetensorsModel::open(golden(config) / "merged", "expected_logits.safetensors");
    std::vector<int32_t> ids;
    for (const int64_t id : test::read_i64(expected, "input_ids"))
      ids.push_back(static_cast<int32_t>(id));
    TokenBatch batch;
    batch.rows = 2;
    batch.seq_len = static_cast<int64_t>(ids.size()) / 2;
    batch.input_ids = ids;
    batch.targets.assign(ids.size(), -100);
    for (int64_t row = 0; row < batch.rows; ++row) {
      for (int64_t t = 0; t < batch.seq_len; ++t)
        batch.positions.push_back(static_cast<int32_t>(t));
      batch.document_starts.push_back({0});
    }
    const LlamaWeights weights = load_llama_weights(tmp / "merged");
    LlamaLoraModel model(weights, nullptr, ModelOptions{});
    const std::vector<float> logits = model.forward_logits(batch);
    const std::vector<float> reference = expected.read_f32(bf16 ? "ref_logits" : "logits");
    const double error = relative_error(logits, reference);
    EXPECT_LE(error, 1e-5);
    std::printf("  %s: ours vs peft merge: logits rel err %.2e, %zu bf16 elements one ulp off\n",
                config.c_str(), error, off_by_rounding);
  }
}

// A bf16 base: every merged element is round_bf16(W + delta), delta in fp32 as merge.h
// states it (Σ_k B[o,k]·A[k,i] in k order, times float(scale)), rounded once. Exact equality:
// the same fp32 operations in the same order give the same bits.
TEST(Merge, Bf16BaseRoundsWPlusFp32DeltaOnce) {
  test::TempDir tmp;
  const fs::path base = golden("llama3_rope_headdim_bf16") / "model";
  const fs::path adapter_dir = golden("llama3_rope_headdim") / "adapter";
  merge_adapter(base, adapter_dir, tmp / "merged", MergeOptions{});
  const SafetensorsModel merged = SafetensorsModel::open(tmp / "merged");
  const SafetensorsModel original = SafetensorsModel::open(base);
  const LoraAdapter adapter = load_peft_adapter(adapter_dir, load_llama_config(base));
  const auto scale = static_cast<float>(adapter.config.scale());
  const int64_t r = adapter.config.r;

  size_t elements = 0, changed = 0, mismatches = 0, peft_double_rounding_differs = 0;
  double max_peft_ulps = 0;
  for (size_t layer = 0; layer < adapter.layers().size(); ++layer) {
    for (LoraTarget target : kAllLoraTargets) {
      const LoraMatrix& m = *adapter.layers()[layer][static_cast<size_t>(target)];
      const std::string name = std::string("model.layers.") + std::to_string(layer) + "." +
                               std::string(lora_target_block(target)) + "." +
                               std::string(lora_target_name(target)) + ".weight";
      ASSERT_EQ(merged.info(name).dtype, DType::BF16) << name;
      std::vector<uint16_t> w(static_cast<size_t>(m.out * m.in));
      std::vector<uint16_t> got(w.size());
      std::memcpy(w.data(), original.data(name).data(), w.size() * 2);
      std::memcpy(got.data(), merged.data(name).data(), got.size() * 2);
      for (int64_t o = 0; o < m.out; ++o) {
        for (int64_t i = 0; i < m.in; ++i) {
          float delta = 0.0f;
          for (int64_t k = 0; k < r; ++k) {
            delta += m.b[static_cast<size_t>(o * r + k)] * m.a[static_cast<size_t>(k * m.in + i)];
          }
          delta *= scale;
          const size_t e = static_cast<size_t>(o * m.in + i);
          const float weight = bf16_to_f32(w[e]);
          const uint16_t expected = f32_to_bf16(weight + delta);
          ++elements;
          changed += expected != w[e];
          mismatches += got[e] != expected;
          // peft with bf16 LoRA weights: delta rounded to bf16, then a bf16 add.
          const uint16_t peft = f32_to_bf16(weight + bf16_to_f32(f32_to_bf16(delta)));
          peft_double_rounding_differs += peft != expected;
          if (peft != expected) {
            // In bf16 ulps of the larger of |W| and |delta| (8 significant bits).
            int exponent = 0;
            std::frexp(std::max(std::fabs(weight), std::fabs(delta)), &exponent);
            const double ulp = std::ldexp(1.0, exponent - 8);
            max_peft_ulps = std::max(
                max_peft_ulps,
                std::fabs(static_cast<double>(bf16_to_f32(peft)) - bf16_to_f32(expected)) / ulp);
          }
        }
      }
    }
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_GT(changed, elements / 2);  // the delta is large enough to move most weights
  std::printf(
      "  bf16 merge: %zu elements, %zu changed, %zu mismatches; peft's bf16 double "
      "rounding would differ on %zu (by at most %.2g bf16 ulp of max(|W|, |delta|))\n",
      elements, changed, mismatches, peft_double_rounding_differs, max_peft_ulps);
  // The other tensors stay bf16 and byte-identical.
  const auto a = merged.data("lm_head.weight");
  const auto b = original.data("lm_head.weight");
  EXPECT_EQ(merged.info("lm_head.weight").dtype, DType::BF16);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size()), 0);
}

TEST(Merge, SmallMaxShardSizeWritesShardsAndAnIndexThatReadBack) {
  test::TempDir tmp;
  const fs::path base = golden("llama3_rope_headdim") / "model";
  const fs::path adapter = golden("llama3_rope_headdim") / "adapter";
  MergeOptions options;
  options.max_shard_bytes = 40'000;  // the model's 210 KB of fp32 in several files
  const MergeResult sharded = merge_adapter(base, adapter, tmp / "sharded", options);
  merge_adapter(base, adapter, tmp / "single", MergeOptions{});

  ASSERT_GE(sharded.weight_files.size(), 4u);
  const size_t shards = sharded.weight_files.size() - 1;
  EXPECT_EQ(sharded.weight_files.back(), "model.safetensors.index.json");
  char first[64];
  std::snprintf(first, sizeof first, "model-00001-of-%05zu.safetensors", shards);
  EXPECT_EQ(sharded.weight_files.front(), first);
  EXPECT_FALSE(fs::exists(tmp / "sharded" / "model.safetensors"));

  const nlohmann::json index =
      nlohmann::json::parse(read_file(tmp / "sharded" / "model.safetensors.index.json"));
  const SafetensorsModel model = SafetensorsModel::open(tmp / "sharded");
  uint64_t total = 0;
  for (const std::string& name : model.tensor_names()) {
    total += model.info(name).nbytes;
    ASSERT_TRUE(index["weight_map"].contains(name)) << name;
    const SafetensorsFile file =
        SafetensorsFile::open(tmp / "sharded" / index["weight_map"][name].get<std::string>());
    EXPECT_NE(file.find(name), nullptr) << name;
  }
  EXPECT_EQ(index["weight_map"].size(), model.tensor_names().size());
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  for (const auto& file : model.files()) {
    uint64_t bytes = 0;
    for (const TensorInfo& info : file->tensors()) bytes += info.nbytes;
    EXPECT_LE(bytes, options.max_shard_bytes) << file->path();
  }
  // The same weights as the one-file merge: the same logits, bit for bit.
  EXPECT_EQ(logits_of(tmp / "sharded", {}), logits_of(tmp / "single", {}));
}

TEST(Merge, VerifyComparesLogitsBeforeTheFolderAppears) {
  test::TempDir tmp;
  MergeOptions options;
  options.verify = MergeVerify::On;
  const MergeResult result = merge_adapter(golden("gqa_tied") / "model",
                                           golden("gqa_tied") / "adapter", tmp / "merged", options);
  ASSERT_TRUE(result.verification.has_value());
  EXPECT_EQ(result.verification->tokens, 16);
  EXPECT_GT(result.verification->max_abs_logit, 0.1);
  // fp32: the same bound as Fp32MergedLogitsEqualBasePlusAdapter.
  EXPECT_LE(result.verification->max_abs_diff, 1e-5 * result.verification->max_abs_logit);
}

TEST(Merge, AdapterForAnotherModelShapeIsRefused) {
  test::TempDir tmp;
  fs::create_directories(tmp / "out");
  // gqa_tied's adapter (hidden 32) on llama3_rope_headdim (hidden 48).
  const std::string message = test::error_of([&] {
    merge_adapter(golden("llama3_rope_headdim") / "model", golden("gqa_tied") / "adapter",
                  tmp / "out" / "merged", MergeOptions{});
  });
  EXPECT_NE(message.find("the adapter was made for another model shape"), std::string::npos)
      << message;
  EXPECT_NE(message.find("where the model needs"), std::string::npos) << message;
  EXPECT_TRUE(fs::is_empty(tmp / "out"));

  // Right sizes, one layer too many.
  LlamaConfig three = load_llama_config(golden("llama3_rope_headdim") / "model");
  three.num_hidden_layers = 3;
  LoraConfig lora;
  lora.targets.fill(true);
  fs::create_directories(tmp / "three");
  save_peft_adapter(tmp / "three", lora_init(three, lora, 1), "");
  const std::string layers = test::error_of([&] {
    merge_adapter(golden("llama3_rope_headdim") / "model", tmp / "three", tmp / "out" / "merged",
                  MergeOptions{});
  });
  EXPECT_NE(layers.find("is for layer 2: the adapter was made for another model shape"),
            std::string::npos)
      << layers;
  EXPECT_TRUE(fs::is_empty(tmp / "out"));
}

TEST(Merge, ExistingOutputRefusedOrReplacedOnlyOnSuccess) {
  test::TempDir tmp;
  const fs::path base = golden("gqa_tied") / "model";
  test::write_text(tmp / "merged" / "old.txt", "earlier");
  MergeOptions options;
  const std::string refused = test::error_of(
      [&] { merge_adapter(base, golden("gqa_tied") / "adapter", tmp / "merged", options); });
  EXPECT_NE(refused.find("already exists"), std::string::npos) << refused;
  options.existing = StagedDir::Existing::Replace;
  test::error_of([&] {
    merge_adapter(base, golden("llama3_rope_headdim") / "adapter", tmp / "merged", options);
  });
  EXPECT_EQ(read_file(tmp / "merged" / "old.txt"), "earlier");
  merge_adapter(base, golden("gqa_tied") / "adapter", tmp / "merged", options);
  EXPECT_FALSE(fs::exists(tmp / "merged" / "old.txt"));
  EXPECT_TRUE(fs::exists(tmp / "merged" / "model.safetensors"));
}

TEST(Merge, MaxShardSizeSpellings) {
  EXPECT_EQ(parse_max_shard_size("5GB", "--max_shard_size"), 5'000'000'000ull);
  EXPECT_EQ(parse_max_shard_size("500MB", "--max_shard_size"), 500'000'000ull);
  EXPECT_EQ(parse_max_shard_size("2GiB", "--max_shard_size"), 2ull << 30);
  EXPECT_EQ(parse_max_shard_size("100KB", "--max_shard_size"), 100'000ull);
  EXPECT_EQ(parse_max_shard_size("4096", "--max_shard_size"), 4096ull);
  for (const char* bad : {"", "GB", "0", "-1GB", "5XB", "1.5GB", "99999999999999999999GB"}) {
    const std::string message =
        test::error_of([&] { parse_max_shard_size(bad, "--max_shard_size"); });
    EXPECT_NE(message.find("--max_shard_size"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace ll
