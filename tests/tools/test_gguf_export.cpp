// Unit tests of tools/gguf_export and tools/gguf_vocab: the q/k row order llama.cpp wants, the
// Llama-3 rope factors, the choice of tokenizer.ggml.pre, and the vocabulary's padding and
// token types. The end-to-end check (files read back with gguf-py, values against the
// safetensors data) is scripts/interop/check_gguf_export.py (ctest gguf.reader).
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "core/file.h"
#include "formats/llama_config.h"
#include "test_util.h"
#include "tokenizer/bpe_trainer.h"
#include "tools/gguf_export.h"
#include "tools/gguf_vocab.h"

namespace ll {
namespace {

using nlohmann::json;

const GgufValue& value_of(const GgufMetadata& metadata, const std::string& key) {
  for (const auto& [name, value] : metadata) {
    if (name == key) return value;
  }
  ADD_FAILURE() << "no key " << key;
  static const GgufValue none;
  return none;
}

TEST(GgufExport, RopeRowsFollowConvertersPermute) {
  // numpy: permute(arange(8), n_head=2) = reshape(2, 2, 2).swapaxes(1, 2).reshape(8)
  //      = [0, 2, 1, 3, 4, 6, 5, 7]: within each head of 4, halves interleaved.
  const std::vector<int64_t> expected = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int64_t row = 0; row < 8; ++row) {
    EXPECT_EQ(gguf_rope_source_row(row, 4), expected[static_cast<size_t>(row)]) << row;
  }
  // head_dim 6: [0, 3, 1, 4, 2, 5] in the first head.
  const std::vector<int64_t> six = {0, 3, 1, 4, 2, 5};
  for (int64_t row = 0; row < 6; ++row) {
    EXPECT_EQ(gguf_rope_source_row(row + 6, 6), 6 + six[static_cast<size_t>(row)]) << row;
  }
}

TEST(GgufExport, Llama3RopeFactorsMatchTheConverter) {
  // The golden fixture's config (theta 5e5, head_dim 16, factor 8, original context 64);
  // the values come from check_gguf_export.py's llama3_rope_factors, a numpy transcription
  // of convert_hf_to_gguf.py's (fp32 frequencies, Python-float arithmetic).
  const LlamaConfig config =
      load_llama_config(test::fixtures() / "golden" / "llama3_rope_headdim" / "model");
  const std::vector<float> factors = gguf_llama3_rope_factors(config);
  ASSERT_EQ(factors.size(), 8u);
  EXPECT_EQ(factors[0], 1.0f);
  EXPECT_NEAR(factors[1], 0x1.389bf2p+1f, 1e-6f);  // between the wavelengths: smoothed
  for (size_t i = 2; i < 8; ++i) EXPECT_EQ(factors[i], 8.0f) << i;
}

TEST(GgufExport, ParsesOuttypes) {
  EXPECT_EQ(parse_gguf_outtype("q8_0"), GgufOutType::Q8_0);
  EXPECT_EQ(gguf_outtype_name(parse_gguf_outtype("bf16")), "bf16");
  const std::string message = test::error_of([] { parse_gguf_outtype("Q4_K"); });
  EXPECT_NE(message.find("--outtype 'Q4_K' is not one of f32, f16, bf16, q8_0"), std::string::npos)
      << message;
}

json byte_level(bool use_regex, bool add_prefix_space) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", add_prefix_space},
          {"trim_offsets", true},
          {"use_regex", use_regex}};
}

TEST(GgufVocab, NamesTheLlamaCppPreTokenizer) {
  const json llama3 = {{"pre_tokenizer",
                        {{"type", "Sequence"},
                         {"pretokenizers",
                          {{{"type", "Split"},
                            {"pattern", {{"Regex", std::string(kLlama3SplitPattern)}}},
                            {"behavior", "Isolated"},
                            {"invert", false}},
                           byte_level(false, false)}}}}};
  EXPECT_EQ(gguf_pre_tokenizer_name(llama3, "t.json"), "llama-bpe");
  EXPECT_EQ(gguf_pre_tokenizer_name({{"pre_tokenizer", byte_level(true, false)}}, "t.json"),
            "gpt-2");
  const std::string message = test::error_of([] {
    gguf_pre_tokenizer_name({{"pre_tokenizer", byte_level(true, true)}}, "t.json");
  });
  EXPECT_NE(message.find("t.json: pre_tokenizer matches no llama.cpp pre-tokenizer"),
            std::string::npos)
      << message;
}

json tiny_tokenizer() {
  return {{"version", "1.0"},
          {"added_tokens",
           {{{"id", 3}, {"content", "<|eot_id|>"}, {"special", true}},
            {{"id", 4}, {"content", "<|note|>"}, {"special", false}},
            {{"id", 5}, {"content", "hello"}, {"special", false}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer", byte_level(true, false)},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model",
           {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}}};
}

// A byte-level BPE over {a, b, ab} plus two added tokens, in a model of vocab_size 8.
TEST(GgufVocab, PadsMissingIdsAndTypesAddedTokens) {
  test::TempDir dir;
  test::write_text(dir / "tokenizer.json", tiny_tokenizer().dump());
  LlamaConfig config;
  config.vocab_size = 8;
  config.bos_token_id = 0;
  config.eos_token_ids = {3};
  const GgufMetadata metadata = gguf_tokenizer_metadata(dir.path(), config);
  EXPECT_EQ(std::get<std::string>(value_of(metadata, "tokenizer.ggml.pre")), "gpt-2");
  EXPECT_EQ(std::get<std::vector<std::string>>(value_of(metadata, "tokenizer.ggml.tokens")),
            (std::vector<std::string>{"a", "b", "ab", "<|eot_id|>", "<|note|>", "hello", "[PAD6]",
                                      "[PAD7]"}));
  EXPECT_EQ(std::get<std::vector<int32_t>>(value_of(metadata, "tokenizer.ggml.token_type")),
            (std::vector<int32_t>{1, 1, 1, 3, 3, 4, 5, 5}));
  EXPECT_EQ(std::get<std::vector<std::string>>(value_of(metadata, "tokenizer.ggml.merges")),
            (std::vector<std::string>{"a b"}));
  EXPECT_EQ(std::get<uint32_t>(value_of(metadata, "tokenizer.ggml.eos_token_id")), 3u);
  EXPECT_EQ(std::get<uint32_t>(value_of(metadata, "tokenizer.ggml.eot_token_id")), 3u);
  EXPECT_FALSE(std::get<bool>(value_of(metadata, "tokenizer.ggml.add_bos_token")));

  config.vocab_size = 5;  // the tokenizer has ids up to 5
  const std::string message = test::error_of([&] { gguf_tokenizer_metadata(dir.path(), config); });
  EXPECT_NE(message.find("has ids up to 5 but config.json's vocab_size is 5"), std::string::npos)
      << message;
}

// A pytorch_model.bin folder (tests/fixtures/torch/gqa_tied_bin, the golden gqa_tied weights
// as torch.save shards) exports the same GGUF, byte for byte, as its safetensors twin.
TEST(GgufExport, PytorchModelBinFolderExportsLikeItsSafetensorsTwin) {
  test::TempDir dir;
  std::string files[2];
  const fs::path sources[2] = {test::fixtures() / "golden" / "gqa_tied" / "model",
                               test::fixtures() / "torch" / "gqa_tied_bin"};
  for (int i = 0; i < 2; ++i) {
    const fs::path folder = dir / ("model" + std::to_string(i));
    fs::copy(sources[i], folder);
    test::write_text(folder / "tokenizer.json", tiny_tokenizer().dump());
    GgufExportOptions options;
    options.name = "gqa_tied";
    const fs::path out = dir / ("out" + std::to_string(i) + ".gguf");
    export_model_gguf(folder, out, options);
    files[i] = read_file(out);
  }
  EXPECT_GT(files[0].size(), 40000u);  // f16 weights of 21,696 parameters and the vocabulary
  EXPECT_TRUE(files[0] == files[1]);
}

}  // namespace
}  // namespace ll
