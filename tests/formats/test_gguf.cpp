// Tests of formats/gguf_write and formats/gguf_quant against gguf-py (gguf==0.19.0, numpy
// 2.4.6), llama.cpp's own Python package: a small file its GGUFWriter wrote must come out of
// ours byte for byte, and F16 / BF16 / Q8_0 encodings of awkward values (zeros, a zero block,
// a subnormal-ish 1e-8, 70000 beyond f16's range, a -2.5 tie) must equal gguf.quants.quantize.
// The reference bytes were printed by this script (run once, pinned versions above):
//   x = (default_rng(7).standard_normal(64) * 3).astype(float32); x[5] = 0; x[40:48] = 0
//   x[10] = 1e-8; x[11] = 70000; x[12] = -2.5
//   quantize(x, Q8_0 | BF16 | F16).tobytes().hex()
//   w = GGUFWriter("tiny.gguf", "llama"); w.add_uint32("general.alignment", 32)
//   w.add_array("a.tokens", ["ab", "c"]); w.add_float32("a.f", 0.5); w.add_bool("a.b", True)
//   w.add_array("a.types", [1, 3]); w.add_tensor("t", arange(6, dtype=float32).reshape(2, 3))
// Then the writer's bad-input cases, each checked for a message naming what is wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file.h"
#include "formats/gguf_quant.h"
#include "formats/gguf_write.h"
#include "test_util.h"

namespace ll {
namespace {

using test::TempDir;

using test::from_hex;

std::vector<float> reference_inputs() {
  const uint32_t bits[64] = {
      0x3b71dba5u, 0x3f656fc3u, 0xbf5289b2u, 0xc02afe5fu, 0xbfae97f5u, 0x00000000u, 0x3e38c2dbu,
      0x4080a921u, 0xbfbd01dfu, 0xbfee432au, 0x322bcc77u, 0x4788b800u, 0xc0200000u, 0xc032a65eu,
      0xbdb3b923u, 0x40057f8bu, 0xc0810b6bu, 0xbfafb976u, 0xc0b68473u, 0xc077975cu, 0xc0b0ce7bu,
      0xbf348cccu, 0xc0735988u, 0x3f5054beu, 0x3ef0c509u, 0xbf0f901fu, 0xc0f19be3u, 0xbfcedbabu,
      0xbe14feb2u, 0x3eae0ae8u, 0xc092e49eu, 0xbfb7750fu, 0xc03be02bu, 0xc01b4bf8u, 0x404bb14au,
      0xc01b0bf2u, 0xbdc7d038u, 0x4029cd88u, 0xbfe01a42u, 0xbeab92feu, 0x00000000u, 0x00000000u,
      0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0xbff6531bu,
      0x40c00a3du, 0x40125a97u, 0xc0664373u, 0x3e64e9f2u, 0x3fdd72e5u, 0xbf10fc13u, 0x40031e68u,
      0xbe4c5759u, 0x40001c8du, 0x408a1922u, 0xc001ba27u, 0x3f1c02adu, 0xbfb1e8fdu, 0x3ec37bfau,
      0xc063f0fcu};
  std::vector<float> out(64);
  std::memcpy(out.data(), bits, sizeof bits);
  return out;
}

std::vector<std::byte> quantized(GgmlType type, const std::vector<float>& x) {
  std::vector<std::byte> out(ggml_row_bytes(type, static_cast<int64_t>(x.size())));
  ggml_quantize(type, x, out);
  return out;
}

TEST(GgufQuant, Q8_0MatchesGgufPy) {
  const std::string expected =
      "4e6000000000000000000000007f00000000000000000000000000000000000000000c2ac2cd43cdfe38dbf900"
      "00000000000000d77f30b40525f42bfc2a5bd50de308b5";
  EXPECT_EQ(quantized(GgmlType::Q8_0, reference_inputs()), from_hex(expected));
}

TEST(GgufQuant, Bf16MatchesGgufPy) {
  const std::string expected =
      "723b653f53bf2bc0afbf0000393e8140bdbfeebf2c32894720c033c0b4bd054081c0b0bfb7c078c0b1c035bf73"
      "c0503ff13e10bff2c0cfbf15beae3e93c0b7bf3cc01bc04c401bc0c8bd2a40e0bfacbe00000000000000000000"
      "000000000000f6bfc040124066c0653edd3f11bf03404cbe00408a4002c01c3fb2bfc33e64c0";
  EXPECT_EQ(quantized(GgmlType::BF16, reference_inputs()), from_hex(expected));
}

TEST(GgufQuant, F16MatchesNumpy) {
  const std::string expected =
      "8f1b2b3b94ba58c175bd0000c6310544e8bd72bf0000007c00c195c19ead2c4008c47ebdb4c5bdc386c5a4b99b"
      "c3833a86377db88dc777bea8b0703597c4bcbddfc1dac05e42d8c03fae4e4101bf5db5000000000000000000000"
      "00000000000b3bf0046934032c32733ec3e88b8194063b2014051440ec0e0388fbd1c3620c3";
  EXPECT_EQ(quantized(GgmlType::F16, reference_inputs()), from_hex(expected));
}

TEST(GgufQuant, Q8_0RoundTripsWithinHalfAStep) {
  // Dequantized q * d differs from x by at most d/2 (rounding) plus f16's rounding of d
  // (relative 2^-11, times |q| <= 127).
  const std::vector<float> x = reference_inputs();
  const std::vector<std::byte> q = quantized(GgmlType::Q8_0, x);
  for (size_t b = 0; b < 2; ++b) {
    uint16_t d_bits;
    std::memcpy(&d_bits, q.data() + b * kQ8_0BlockBytes, 2);
    const float d = f16_to_f32(d_bits);
    for (size_t j = 0; j < 32; ++j) {
      const auto v = static_cast<int8_t>(q[b * kQ8_0BlockBytes + 2 + j]);
      const float back = static_cast<float>(v) * d;
      EXPECT_LE(std::fabs(back - x[b * 32 + j]), d * 0.5f + d * 127.0f / 2048.0f) << b << " " << j;
    }
  }
}

TEST(GgufQuant, RefusesRowsQ8_0CannotHold) {
  EXPECT_FALSE(ggml_type_fits_row(GgmlType::Q8_0, 48));
  EXPECT_TRUE(ggml_type_fits_row(GgmlType::F16, 48));
  try {
    ggml_row_bytes(GgmlType::Q8_0, 48);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("48 values cannot be stored as Q8_0"), std::string::npos)
        << e.what();
  }
}

GgufMetadata reference_metadata() {
  return {{"general.architecture", std::string("llama")},
          {"general.alignment", uint32_t{32}},
          {"a.tokens", std::vector<std::string>{"ab", "c"}},
          {"a.f", 0.5f},
          {"a.b", true},
          {"a.types", std::vector<int32_t>{1, 3}}};
}

TEST(GgufWrite, FileEqualsGgufPyByteForByte) {
  const std::string expected =
      "474755460300000001000000000000000600000000000000140000000000000067656e6572616c2e617263686974"
      "6563747572650800000005000000000000006c6c616d61110000000000000067656e6572616c2e616c69676e6d65"
      "6e7404000000200000000800000000000000612e746f6b656e730900000008000000020000000000000002000000"
      "00"
      "00000061620100000000000000630300000000000000612e66060000000000003f0300000000000000612e620700"
      "0000010700000000000000612e747970657309000000050000000200000000000000010000000300000001000000"
      "00000000740200000003000000000000000200000000000000000000000000000000000000000000000000000000"
      "0000"
      "000000000000000000000000000000803f0000004000004040000080400000a0400000000000000000";
  TempDir dir;
  const fs::path path = dir / "tiny.gguf";
  const std::vector<float> values = {0, 1, 2, 3, 4, 5};
  {
    GgufWriter writer(path, reference_metadata(), {{"t", {2, 3}, GgmlType::F32}});
    EXPECT_FALSE(fs::exists(path));  // only the temporary file until finish()
    writer.write_next("t", std::as_bytes(std::span(values)));
    writer.finish();
  }
  const std::string text = read_file(path);
  const auto* data = reinterpret_cast<const std::byte*>(text.data());
  EXPECT_EQ(std::vector<std::byte>(data, data + text.size()), from_hex(expected));
  EXPECT_EQ(gguf_header_bytes(reference_metadata(), std::vector<GgufTensorInfo>{{"t", {2, 3}}}),
            std::vector<std::byte>(data, data + text.size() - 32));  // all but the data
}

std::string error_of(const std::function<void()>& run) {
  try {
    run();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(GgufWrite, BadInputIsRefusedWithOneLine) {
  TempDir dir;
  const std::vector<float> six(6, 1.0f);
  const auto bytes = std::as_bytes(std::span(six));
  // A Q8_0 tensor whose rows are not a multiple of 32.
  EXPECT_NE(error_of([&] {
              GgufWriter(dir / "a.gguf", {}, {{"w", {2, 3}, GgmlType::Q8_0}});
            }).find("tensor 'w' [2, 3]: rows of 3 values cannot be stored as Q8_0"),
            std::string::npos);
  // Twice the same tensor or key.
  EXPECT_NE(error_of([&] {
              gguf_header_bytes({}, std::vector<GgufTensorInfo>{{"t", {1}}, {"t", {1}}});
            }).find("tensor name 't' is empty or given twice"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              gguf_header_bytes({{"k", true}, {"k", false}}, {});
            }).find("metadata key 'k' is empty or given twice"),
            std::string::npos);
  // Wrong tensor order, wrong byte count, too few tensors: nothing is left behind.
  {
    GgufWriter writer(dir / "b.gguf", {}, {{"t", {2, 3}}, {"u", {6}}});
    EXPECT_NE(
        error_of([&] { writer.write_next("u", bytes); }).find("'u' written where 't' comes next"),
        std::string::npos);
    EXPECT_NE(error_of([&] {
                writer.write_next("t", bytes.first(8));
              }).find("tensor 't' needs 24 bytes but 8 were given"),
              std::string::npos);
    writer.write_next("t", bytes);
    EXPECT_NE(error_of([&] { writer.finish(); }).find("finish() after 1 of 2 tensors"),
              std::string::npos);
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
  // An output folder that does not exist.
  const std::string missing = error_of([&] { GgufWriter(dir / "no" / "c.gguf", {}, {}); });
  EXPECT_NE(missing.find("[gguf] " + (dir / "no" / "c.gguf").string() + ": cannot create"),
            std::string::npos)
      << missing;
}

}  // namespace
}  // namespace ll
