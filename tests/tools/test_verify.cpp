// verify (tools/verify.h): a correct merge passes (fp32 and bf16, and with an adapter whose
// config asks for dropout 0.05: the reference runs in Eval mode), a merged folder with one
// projection altered fails, and merge --verify writes nothing when the check fails.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file.h"
#include "formats/safetensors.h"
#include "test_util.h"
#include "tools/merge.h"
#include "tools/verify.h"

namespace ll {
namespace {

fs::path golden(const std::string& name) {
  return test::fixtures() / "golden" / name;
}

// A copy of `adapter` whose adapter_config.json says lora_dropout = `dropout`.
fs::path adapter_with_dropout(const fs::path& adapter, double dropout, const fs::path& dir) {
  fs::create_directories(dir);
  fs::copy_file(adapter / "adapter_model.safetensors", dir / "adapter_model.safetensors");
  nlohmann::json config = nlohmann::json::parse(read_file(adapter / "adapter_config.json"));
  config["lora_dropout"] = dropout;
  write_file_atomic(dir / "adapter_config.json", config.dump(2));
  return dir;
}

// Overwrites tensor `name` of the one-file folder `merged` with the same tensor of `base`
// (as a merge that forgot that projection's delta would).
void restore_tensor(const fs::path& merged, const fs::path& base, const std::string& name) {
  const fs::path file = merged / "model.safetensors";
  std::string bytes = read_file(file);
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, header_size));
  const auto begin = header.at(name).at("data_offsets")[0].get<uint64_t>();
  const SafetensorsModel original = SafetensorsModel::open(base);
  const auto data = original.data(name);
  ASSERT_EQ(header.at(name).at("data_offsets")[1].get<uint64_t>() - begin, data.size());
  std::memcpy(bytes.data() + 8 + header_size + begin, data.data(), data.size());
  write_file_atomic(file, bytes);
}

TEST(Verify, CorrectFp32MergeOfADropoutAdapterPasses) {
  // peft's merge ignores dropout, so a correct merge equals base + adapter in eval mode. A
  // reference computed with dropout on (the old ModelOptions{} path) misses by far more.
  test::TempDir tmp;
  const fs::path base = golden("gqa_tied") / "model";
  const fs::path adapter = adapter_with_dropout(golden("gqa_tied") / "adapter", 0.05, tmp / "a");
  merge_adapter(base, adapter, tmp / "merged", MergeOptions{});
  const Verification v = verify_merged_model(base, adapter, tmp / "merged");
  EXPECT_EQ(v.tokens, 16);
  EXPECT_EQ(v.merged_dtype, DType::F32);
  EXPECT_EQ(v.tolerance, 1e-4);
  EXPECT_GT(v.max_abs_logit, 0.1);
  EXPECT_GT(v.adapter_effect, 1e-2);  // the adapter does something the merge must keep
  // fp32: the bound of Merge.Fp32MergedLogitsEqualBasePlusAdapter.
  EXPECT_LE(v.relative, 1e-5);
  EXPECT_TRUE(v.passed());
  std::printf("  fp32 verify: %s\n", verification_summary(v).c_str());
}

TEST(Verify, Bf16MergePassesItsDefaultTolerance) {
  test::TempDir tmp;
  const fs::path base = golden("llama3_rope_headdim_bf16") / "model";
  const fs::path adapter = golden("llama3_rope_headdim") / "adapter";
  merge_adapter(base, adapter, tmp / "merged", MergeOptions{});
  const Verification v = verify_merged_model(base, adapter, tmp / "merged");
  EXPECT_EQ(v.merged_dtype, DType::BF16);
  EXPECT_EQ(v.tolerance, 2e-2);
  EXPECT_GT(v.relative, 0);  // one bf16 rounding of W + delta shows
  EXPECT_TRUE(v.passed()) << verification_summary(v);
  std::printf("  bf16 verify: %s\n", verification_summary(v).c_str());
}

TEST(Verify, OneAlteredProjectionFails) {
  for (const char* fixture : {"gqa_tied", "llama3_rope_headdim_bf16"}) {
    SCOPED_TRACE(fixture);
    test::TempDir tmp;
    const fs::path base = golden(fixture) / "model";
    const fs::path adapter =
        golden(std::string(fixture) == "gqa_tied" ? "gqa_tied" : "llama3_rope_headdim") / "adapter";
    merge_adapter(base, adapter, tmp / "merged", MergeOptions{});
    ASSERT_TRUE(verify_merged_model(base, adapter, tmp / "merged").passed());
    restore_tensor(tmp / "merged", base, "model.layers.1.self_attn.v_proj.weight");
    const Verification v = verify_merged_model(base, adapter, tmp / "merged");
    EXPECT_FALSE(v.passed()) << verification_summary(v);
    EXPECT_NE(verification_summary(v).find("FAIL"), std::string::npos);
  }
}

TEST(Verify, MergeVerifyAboveTheToleranceWritesNothing) {
  test::TempDir tmp;
  MergeOptions options;
  options.verify = MergeVerify::On;
  options.verify_options.tolerance = 0.0;  // the bf16 merge's rounding is above zero
  const std::string message = test::error_of([&] {
    merge_adapter(golden("llama3_rope_headdim_bf16") / "model",
                  golden("llama3_rope_headdim") / "adapter", tmp / "merged", options);
  });
  EXPECT_NE(message.find("not written: the merged model is not base + adapter"), std::string::npos)
      << message;
  EXPECT_NE(message.find("FAIL"), std::string::npos) << message;
  EXPECT_TRUE(fs::is_empty(tmp.path())) << "nothing left behind";

  options.verify_options.tolerance = -1;
  EXPECT_NE(test::error_of([&] {
              merge_adapter(golden("gqa_tied") / "model", golden("gqa_tied") / "adapter",
                            tmp / "merged", options);
            }).find("--tolerance must be a finite number >= 0"),
            std::string::npos);
}

}  // namespace
}  // namespace ll
