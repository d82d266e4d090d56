// Tests of core/: dtype conversions, number formatting, atomic files and staged folders.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file.h"
#include "core/text.h"
#include "test_util.h"

namespace ll {
namespace {

TEST(DType, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 lies exactly half-way between bf16 1.0 and 1.0078125: ties go to even (1.0).
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // Just above the half-way point rounds up.
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);
  // 1 + 3*2^-8 is half-way between 0x3f81 and 0x3f82: ties to even (0x3f82).
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xc000), -2.0f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(INFINITY)), INFINITY);
}

TEST(DType, Bf16ArrayRoundingEqualsTheScalarOne) {
  // f32_to_bf16_n (AVX-512 where available) against f32_to_bf16 on every bit pattern whose low
  // 16 bits are one of the rounding cases (below, at and above the tie, both parities of the
  // kept bit), over all 65536 high halves: normals, subnormals, zeros, infinities, NaNs of both
  // signs. 17 of 19 elements per high half sit in full 16-lane blocks, the rest in the tail.
  const uint32_t lows[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff, 0x4000,
                           0xc000, 0x7ffe, 0x8002, 0x1234, 0xfedc, 0x3fff, 0xbfff,
                           0x00ff, 0xff00, 0x5555, 0xaaaa, 0x0f0f};
  std::vector<float> src;
  for (uint32_t high = 0; high < 0x10000; ++high) {
    for (const uint32_t low : lows) {
      const uint32_t bits = high << 16 | low;
      float value;
      std::memcpy(&value, &bits, sizeof value);
      src.push_back(value);
    }
  }
  std::vector<uint16_t> dst(src.size());
  f32_to_bf16_n(dst.data(), src.data(), static_cast<int64_t>(src.size()));
  for (size_t i = 0; i < src.size(); ++i) {
    ASSERT_EQ(dst[i], f32_to_bf16(src[i])) << "element " << i;
  }
}

TEST(DType, F16KnownValues) {
  // Values from the IEEE 754 binary16 definition.
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);               // largest normal
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);               // rounds to inf
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(f16_to_f32(0x3555), 0.333251953125f);
  for (uint32_t bits = 0; bits < 0x7c00; ++bits) {  // every finite non-negative f16 round-trips
    ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(bits))), bits) << bits;
  }
}

TEST(DType, Names) {
  EXPECT_EQ(parse_dtype("BF16"), DType::BF16);
  EXPECT_EQ(parse_dtype("I64"), DType::I64);
  EXPECT_EQ(parse_dtype("F8_E4M3"), std::nullopt);
  EXPECT_FALSE(dtype_is_float(DType::I32));
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_name(DType::F16), "F16");
}

TEST(Text, FormatCount) {
  EXPECT_EQ(format_count(0), "0");
  EXPECT_EQ(format_count(999), "999");
  EXPECT_EQ(format_count(9100000), "9,100,000");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(12), "12 B");
}

TEST(File, AtomicWriteReplacesWholeFile) {
  test::TempDir dir;
  const auto path = dir / "a.txt";
  write_file_atomic(path, std::string_view("first"));
  write_file_atomic(path, std::string_view("second"));
  EXPECT_EQ(read_file(path), "second");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(File, MissingFileNamesPath) {
  try {
    read_file("/nonexistent/x.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.json"), std::string::npos);
  }
}

TEST(File, MappedFileSeesContents) {
  test::TempDir dir;
  write_file_atomic(dir / "m.bin", std::string_view("abc"));
  MappedFile mapped(dir / "m.bin");
  ASSERT_EQ(mapped.size(), 3u);
  EXPECT_EQ(static_cast<char>(mapped.bytes()[2]), 'c');
}

TEST(File, StagedDirOnlyAppearsOnCommit) {
  test::TempDir dir;
  const auto out = dir / "out";
  {
    StagedDir staged(out, StagedDir::Existing::Refuse);
    write_file_atomic(staged.path() / "x", std::string_view("1"));
    EXPECT_FALSE(fs::exists(out));
  }  // dropped without commit: nothing left
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 0);
  {
    StagedDir staged(out, StagedDir::Existing::Refuse);
    write_file_atomic(staged.path() / "x", std::string_view("2"));
    staged.commit();
  }
  EXPECT_EQ(read_file(out / "x"), "2");
  EXPECT_THROW(StagedDir(out, StagedDir::Existing::Refuse), Error);
  {
    StagedDir staged(out, StagedDir::Existing::Replace);
    write_file_atomic(staged.path() / "y", std::string_view("3"));
    staged.commit();
  }
  EXPECT_FALSE(fs::exists(out / "x"));
  EXPECT_EQ(read_file(out / "y"), "3");
}

}  // namespace
}  // namespace ll
