// Tests of formats/safetensors: byte-exact agreement with the reference library, write/read
// round trips (all dtypes, sharded with index, streaming), one test per corrupt input
// (each asserting that the message names the file and the problem), and a fuzz-style run
// of random header damage that must end in ll::Error, never a crash (run under ASan).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/file.h"
#include "formats/safetensors.h"
#include "test_util.h"

namespace ll {
namespace {

using nlohmann::json;

using test::from_hex;

// gtest without gmock (the test binaries link gtest only): a substring check that prints
// the whole message when it fails.
#define EXPECT_CONTAINS(text, part)                          \
  EXPECT_NE(std::string(text).find(part), std::string::npos) \
      << "expected to find: " << (part) << "\n                in: " << (text)

template <typename T>
std::span<const std::byte> bytes_of(const std::vector<T>& values) {
  return std::as_bytes(std::span(values));
}

std::vector<std::byte> read_bytes(const fs::path& path) {
  const std::string text = read_file(path);
  const auto* begin = reinterpret_cast<const std::byte*>(text.data());
  return {begin, begin + text.size()};
}

void write_bytes(const fs::path& path, std::span<const std::byte> bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// A file with `header` as its JSON and `data_bytes` zero bytes of data; the length field
// says `header.size()` unless `claimed_header_bytes` overrides it.
void write_raw(const fs::path& path, const std::string& header, size_t data_bytes,
               std::optional<uint64_t> claimed_header_bytes = std::nullopt) {
  uint64_t length = claimed_header_bytes.value_or(header.size());
  std::vector<std::byte> bytes(8);
  for (auto& b : bytes) {
    b = static_cast<std::byte>(length & 0xff);
    length >>= 8;
  }
  for (const char c : header) bytes.push_back(static_cast<std::byte>(c));
  bytes.resize(bytes.size() + data_bytes);
  write_bytes(path, bytes);
}

// Runs `body`, which must throw ll::Error whose message contains every one of `parts`.
template <typename Body>
void expect_error(Body body, std::initializer_list<std::string> parts) {
  try {
    body();
    ADD_FAILURE() << "expected an ll::Error";
  } catch (const Error& error) {
    const std::string message = error.what();
    for (const std::string& part : parts) EXPECT_CONTAINS(message, part);
    EXPECT_EQ(message.find('\n'), std::string::npos) << "error must be one line: " << message;
  }
}

// Bytes of a file written by the reference library (Python safetensors 0.8.0):
//   serialize({"model.w": F32 [2,2] [1,-2,0.5,3], "model.b": BF16 [3] [1,-0.5,2],
//              "model.h": F16 [3] [0.25,-1.5,65504]}, metadata={"format": "pt"})
constexpr std::string_view kReferenceFile =
    "e0000000000000007b225f5f6d657461646174615f5f223a7b22666f726d6174223a227074227d2c226d6f64"
    "656c2e77223a7b226474797065223a22463332222c227368617065223a5b322c325d2c22646174615f6f6666"
    "73657473223a5b302c31365d7d2c226d6f64656c2e62223a7b226474797065223a2242463136222c22736861"
    "7065223a5b335d2c22646174615f6f666673657473223a5b31362c32325d7d2c226d6f64656c2e68223a7b22"
    "6474797065223a22463136222c227368617065223a5b335d2c22646174615f6f666673657473223a5b32322c"
    "32385d7d7d202020202020200000803f000000c00000003f00004040803f00bf0040003400beff7b";

TEST(Safetensors, ReadsTheReferenceLibrarysFile) {
  test::TempDir dir;
  write_bytes(dir / "model.safetensors", from_hex(kReferenceFile));
  const SafetensorsModel model = SafetensorsModel::open(dir.path());
  EXPECT_EQ(model.tensor_names(), (std::vector<std::string>{"model.b", "model.h", "model.w"}));
  EXPECT_EQ(model.info("model.w").shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(model.read_f32("model.w"), (std::vector<float>{1, -2, 0.5f, 3}));
  EXPECT_EQ(model.info("model.b").dtype, DType::BF16);
  EXPECT_EQ(model.read_f32("model.b"), (std::vector<float>{1, -0.5f, 2}));
  EXPECT_EQ(model.info("model.h").dtype, DType::F16);
  EXPECT_EQ(model.read_f32("model.h"), (std::vector<float>{0.25f, -1.5f, 65504}));
  EXPECT_EQ(model.files()[0]->metadata(), (Metadata{{"format", "pt"}}));
  EXPECT_EQ(model.total_bytes(), 28u);
}

TEST(Safetensors, WritesExactlyWhatTheReferenceLibraryWrites) {
  const std::vector<float> w = {1, -2, 0.5f, 3};
  const std::vector<uint16_t> b = {0x3f80, 0xbf00, 0x4000};
  const std::vector<uint16_t> h = {f32_to_f16(0.25f), f32_to_f16(-1.5f), f32_to_f16(65504)};
  const TensorToWrite tensors[] = {{"model.w", DType::F32, {2, 2}, bytes_of(w)},
                                   {"model.b", DType::BF16, {3}, bytes_of(b)},
                                   {"model.h", DType::F16, {3}, bytes_of(h)}};
  test::TempDir dir;
  write_safetensors(dir / "x.safetensors", tensors, {{"format", "pt"}});
  EXPECT_EQ(read_bytes(dir / "x.safetensors"), from_hex(kReferenceFile));
}

TEST(Safetensors, RoundTripsEveryDtypeScalarsAndEmptyTensors) {
  const std::vector<float> f32 = {1.5f, -2.25f, 3e-8f, 1e30f, 0, -0.0f};
  const std::vector<uint16_t> bf16 = {f32_to_bf16(0.0078125f), f32_to_bf16(-3.0f)};
  const std::vector<uint16_t> f16 = {f32_to_f16(0.5f), f32_to_f16(-65504.0f), f32_to_f16(1e-7f)};
  const std::vector<float> scalar = {42};
  const TensorToWrite tensors[] = {{"a", DType::F32, {2, 3}, bytes_of(f32)},
                                   {"empty", DType::F32, {0, 5}, {}},
                                   {"b", DType::BF16, {2, 1}, bytes_of(bf16)},
                                   {"c", DType::F16, {3}, bytes_of(f16)},
                                   {"s", DType::F32, {}, bytes_of(scalar)}};
  test::TempDir dir;
  write_safetensors(dir / "t.safetensors", tensors, {{"step", "7"}, {"format", "pt"}});
  const SafetensorsFile file = SafetensorsFile::open(dir / "t.safetensors");
  ASSERT_EQ(file.tensors().size(), 5u);
  EXPECT_EQ(file.metadata(), (Metadata{{"step", "7"}, {"format", "pt"}}));
  uint64_t offset = 0;
  for (const TensorToWrite& expected : tensors) {
    const TensorInfo* info = file.find(expected.name);
    ASSERT_NE(info, nullptr) << expected.name;
    EXPECT_EQ(info->dtype, expected.dtype);
    EXPECT_EQ(info->shape, expected.shape);
    EXPECT_EQ(info->offset, offset) << "tensors must be laid out in the given order";
    offset += info->nbytes;
    const auto data = file.data(*info);
    ASSERT_EQ(data.size(), expected.data.size());
    EXPECT_TRUE(std::equal(data.begin(), data.end(), expected.data.begin()));
  }
  EXPECT_EQ(file.find("s")->numel(), 1);
  EXPECT_EQ(file.find("empty")->numel(), 0);
  EXPECT_EQ(file.find("missing"), nullptr);

  const SafetensorsModel model = SafetensorsModel::open(dir.path(), "t.safetensors");
  EXPECT_EQ(model.read_f32("a"), f32);
  EXPECT_EQ(model.read_f32("b"), (std::vector<float>{0.0078125f, -3.0f}));
  EXPECT_EQ(model.read_f32("c"), (std::vector<float>{0.5f, -65504.0f, f16_to_f32(f16[2])}));
  EXPECT_EQ(model.read_f32("s"), scalar);
  EXPECT_TRUE(model.read_f32("empty").empty());
  expect_error([&] { model.info("nope"); }, {dir.path().string(), "'nope'"});
}

TEST(Safetensors, HeaderIsPaddedTo8Bytes) {
  for (size_t name_length = 1; name_length <= 9; ++name_length) {
    const std::vector<float> v = {1};
    const TensorToWrite tensor{std::string(name_length, 'x'), DType::F32, {1}, bytes_of(v)};
    test::TempDir dir;
    write_safetensors(dir / "p.safetensors", std::span(&tensor, 1));
    const auto bytes = read_bytes(dir / "p.safetensors");
    uint64_t header = 0;
    std::memcpy(&header, bytes.data(), 8);
    EXPECT_EQ(header % 8, 0u);
    EXPECT_EQ(bytes.size(), 8 + header + 4);
  }
}

TEST(Safetensors, ShardedWriteFollowsSavePretrained) {
  std::vector<std::vector<float>> values;
  std::vector<TensorToWrite> tensors;
  for (int i = 0; i < 5; ++i) values.push_back(std::vector<float>(10, static_cast<float>(i)));
  values.push_back(std::vector<float>(30, 9.0f));  // 120 bytes: larger than a shard
  for (size_t i = 0; i < values.size(); ++i) {
    tensors.push_back({"t" + std::to_string(i),
                       DType::F32,
                       {static_cast<int64_t>(values[i].size())},
                       bytes_of(values[i])});
  }
  test::TempDir dir;
  // Stale files of an earlier, differently sharded save must disappear.
  test::write_text(dir / "model-00001-of-00009.safetensors", "stale");
  test::write_text(dir / "model.safetensors", "stale");
  test::write_text(dir / "notes.txt", "kept");
  // 100-byte shards, 40-byte tensors: [t0 t1] [t2 t3] [t4] then t5 alone (too large).
  // huggingface_hub puts an oversized tensor in its own shard when it meets it.
  write_sharded_safetensors(dir.path(), tensors, 100);
  const json index = json::parse(read_file(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 5 * 40 + 120);
  EXPECT_EQ(index["weight_map"]["t0"], "model-00001-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["t1"], "model-00001-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["t2"], "model-00002-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["t3"], "model-00002-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["t5"], "model-00003-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["t4"], "model-00004-of-00004.safetensors");
  EXPECT_FALSE(fs::exists(dir / "model-00001-of-00009.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "notes.txt"));

  const SafetensorsModel model = SafetensorsModel::open(dir.path());
  EXPECT_EQ(model.files().size(), 4u);
  EXPECT_EQ(model.tensor_names().size(), 6u);
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(model.read_f32("t" + std::to_string(i)), values[i]);
  }
  for (const auto& file : model.files()) {
    EXPECT_EQ(file->metadata().at("format"), "pt") << "transformers requires format=pt";
  }

  // Everything fits in one shard: a single model.safetensors and no index.
  write_sharded_safetensors(dir.path(), tensors, 1000);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "model-00001-of-00004.safetensors"));
  EXPECT_EQ(SafetensorsModel::open(dir.path()).read_f32("t5"), values[5]);
}

std::vector<TensorInfo> small_bf16_layout() {
  std::vector<TensorInfo> layout;
  const std::vector<std::pair<const char*, std::vector<int64_t>>> shapes = {
      {"a", {10, 4}}, {"b", {3}}, {"c", {50, 2}}, {"d", {7, 7}}, {"e", {1}}};
  for (const auto& [name, shape] : shapes) {
    TensorInfo info;
    info.name = name;
    info.dtype = DType::BF16;
    info.shape = shape;
    layout.push_back(info);
  }
  return layout;
}

TEST(Safetensors, StreamingShardedWriteMatchesWriteShardedSafetensors) {
  // Bytes of each tensor: a 80, b 6, c 200, d 98, e 2. With a 120-byte limit the shards
  // are [c] (too large: its own shard, when it is met) [a b] [d e], plus the index.
  const std::vector<TensorInfo> layout = small_bf16_layout();
  std::vector<std::vector<std::byte>> data;
  for (size_t i = 0; i < layout.size(); ++i) {
    std::vector<std::byte> bytes(static_cast<size_t>(layout[i].numel()) * 2);
    for (size_t j = 0; j < bytes.size(); ++j) bytes[j] = static_cast<std::byte>(i * 31 + j);
    data.push_back(std::move(bytes));
  }
  for (const uint64_t limit : {uint64_t{120}, uint64_t{1} << 20}) {
    test::TempDir streamed;
    test::TempDir reference;
    std::vector<std::string> notified;
    std::vector<size_t> produced;
    const std::vector<std::string> files = write_sharded_safetensors_streaming(
        streamed.path(), layout, limit, {},
        [&](size_t i) {
          produced.push_back(i);
          return std::span<const std::byte>(data[i]);
        },
        [&](const std::string& file) { notified.push_back(file); });
    EXPECT_EQ(files, notified);
    // Each tensor asked for once, shard by shard (memory stays at one tensor).
    const std::vector<size_t> file_order =
        limit == 120 ? std::vector<size_t>{2, 0, 1, 3, 4} : std::vector<size_t>{0, 1, 2, 3, 4};
    EXPECT_EQ(produced, file_order);

    std::vector<TensorToWrite> tensors;
    for (size_t i = 0; i < layout.size(); ++i) {
      tensors.push_back({layout[i].name, layout[i].dtype, layout[i].shape, data[i]});
    }
    write_sharded_safetensors(reference.path(), tensors, limit);

    size_t reference_files = 0;
    for (const auto& entry : fs::directory_iterator(reference.path())) {
      ++reference_files;
      const std::string name = entry.path().filename().string();
      ASSERT_TRUE(fs::exists(streamed / name)) << name;
      EXPECT_EQ(read_file(streamed / name), read_file(entry.path())) << name;
    }
    EXPECT_EQ(files.size(), reference_files);
    if (limit == 120) {
      EXPECT_EQ(files.back(), "model.safetensors.index.json");
      EXPECT_EQ(files.size(), 4u);
    } else {
      EXPECT_EQ(files, std::vector<std::string>{"model.safetensors"});
    }
    const SafetensorsModel model = SafetensorsModel::open(streamed.path());
    for (size_t i = 0; i < layout.size(); ++i) {
      const std::span<const std::byte> read = model.data(layout[i].name);
      EXPECT_TRUE(std::equal(read.begin(), read.end(), data[i].begin(), data[i].end()));
    }
  }
}

TEST(Safetensors, StreamingShardedWriteRejectsWrongByteCounts) {
  const std::vector<TensorInfo> layout = small_bf16_layout();
  const std::vector<std::byte> too_short(7);
  test::TempDir dir;
  expect_error(
      [&] {
        write_sharded_safetensors_streaming(dir.path(), layout, 1 << 20, {},
                                            [&](size_t) { return std::span(too_short); });
      },
      {"model.safetensors", "'a'", "80 bytes", "7 were given"});
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  expect_error(
      [&] {
        write_sharded_safetensors_streaming(dir.path(), layout, 0, {},
                                            [&](size_t) { return std::span(too_short); });
      },
      {dir.path().string(), "max_shard_bytes must be positive"});
}

TEST(Safetensors, StreamingWriterWritesInLayoutOrder) {
  const std::vector<float> a = {1, 2, 3, 4};
  const std::vector<uint16_t> b = {f32_to_bf16(5), f32_to_bf16(6)};
  std::vector<TensorInfo> layout(2);
  layout[0].name = "first";
  layout[0].shape = {2, 2};
  layout[1].name = "second";
  layout[1].dtype = DType::BF16;
  layout[1].shape = {2};
  test::TempDir dir;
  const fs::path path = dir / "s.safetensors";
  {
    SafetensorsWriter writer(path, layout, {{"format", "pt"}});
    expect_error([&] { writer.write_next("second", bytes_of(b)); }, {path.string(), "'first'"});
    expect_error([&] { writer.write_next("first", bytes_of(b)); }, {path.string(), "16 bytes"});
    writer.write_next("first", bytes_of(a));
    expect_error([&] { writer.finish(); }, {path.string(), "'second'"});
    EXPECT_FALSE(fs::exists(path)) << "nothing appears under the final name before finish()";
    writer.write_next("second", bytes_of(b));
    writer.finish();
  }
  const SafetensorsModel model = SafetensorsModel::open(dir.path(), "s.safetensors");
  EXPECT_EQ(model.read_f32("first"), a);
  EXPECT_EQ(model.read_f32("second"), (std::vector<float>{5, 6}));

  // Abandoned without finish(): no final file and no temporary left behind.
  const fs::path abandoned = dir / "abandoned.safetensors";
  {
    SafetensorsWriter writer(abandoned, layout);
    writer.write_next("first", bytes_of(a));
  }
  EXPECT_FALSE(fs::exists(abandoned));
  size_t entries = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) entries += !entry.path().empty();
  EXPECT_EQ(entries, 1u);
}

TEST(Safetensors, WriterRejectsWrongSizesAndDuplicateNames) {
  const std::vector<float> v = {1, 2, 3};
  test::TempDir dir;
  const fs::path path = dir / "w.safetensors";
  const TensorToWrite short_data[] = {{"x", DType::F32, {4}, bytes_of(v)}};
  expect_error([&] { write_safetensors(path, short_data); }, {"'x'", "16 bytes", "12 bytes"});
  const TensorToWrite duplicate[] = {{"x", DType::F32, {3}, bytes_of(v)},
                                     {"x", DType::F32, {3}, bytes_of(v)}};
  expect_error([&] { write_safetensors(path, duplicate); }, {"'x'", "twice"});
  EXPECT_FALSE(fs::exists(path));
}

// ---- corrupt files: each error names the file and what is wrong ---------------------

struct CorruptFile : ::testing::Test {
  test::TempDir dir;
  fs::path path = dir / "model.safetensors";
  void expect_open_error(std::initializer_list<std::string> parts) {
    std::vector<std::string> all(parts);
    all.push_back("[safetensors] " + path.string() + ": ");
    try {
      SafetensorsFile::open(path);
      ADD_FAILURE() << "expected an ll::Error";
    } catch (const Error& error) {
      for (const std::string& part : all) EXPECT_CONTAINS(error.what(), part);
    }
  }
};

const std::string kOneTensor = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

TEST_F(CorruptFile, MissingFileIsOurErrorToo) {
  expect_open_error({"cannot open"});
}

TEST_F(CorruptFile, ShorterThanTheLengthField) {
  write_raw(path, "", 0, 0);
  std::filesystem::resize_file(path, 5);
  expect_open_error({"5 bytes", "too short"});
}

TEST_F(CorruptFile, HeaderLengthBeyondTheFile) {
  write_raw(path, kOneTensor, 8, 5000);
  expect_open_error({"header length 5,000 bytes runs past the end of the file"});
}

TEST_F(CorruptFile, HeaderLengthAbsurd) {
  write_raw(path, kOneTensor, 8, uint64_t{1} << 60);
  expect_open_error({"exceeds the 100,000,000-byte limit"});
}

TEST_F(CorruptFile, HeaderNotJson) {
  write_raw(path, "{\"w\": [1, 2", 0);
  expect_open_error({"header: not valid JSON"});
}

TEST_F(CorruptFile, HeaderNotAnObject) {
  write_raw(path, "[1, 2, 3]", 0);
  expect_open_error({"header must be a JSON object, got array"});
}

TEST_F(CorruptFile, MissingField) {
  write_raw(path, R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 8);
  expect_open_error({"tensor 'w' has no 'shape' field"});
}

TEST_F(CorruptFile, WrongFieldTypes) {
  write_raw(path, R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8);
  expect_open_error({"tensor 'w': 'shape' must be an array, got string"});
  write_raw(path, R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8);
  expect_open_error({"tensor 'w': 'dtype' must be a string, got integer"});
  write_raw(path, R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8);
  expect_open_error({"tensor 'w': 'shape' entries must be integers, got float"});
  write_raw(path, R"({"w":"F32"})", 0);
  expect_open_error({"tensor 'w': header entry must be an object, got string"});
}

TEST_F(CorruptFile, UnknownDtype) {
  write_raw(path, R"({"ids":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", 8);
  expect_open_error({"tensor 'ids' has dtype 'F8_E4M3'", "supported: F32, BF16, F16, I32, I64"});
  write_raw(path, R"({"q":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", 8);
  expect_open_error({"tensor 'q' has dtype 'F8_E4M3'"});
}

TEST_F(CorruptFile, NegativeDimension) {
  write_raw(path, R"({"w":{"dtype":"F32","shape":[-2, -1],"data_offsets":[0,8]}})", 8);
  expect_open_error({"tensor 'w' has negative dimension -2"});
}

TEST_F(CorruptFile, ShapeProductOverflows) {
  write_raw(path, R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})",
            0);
  expect_open_error({"tensor 'w' has shape [4294967296, 4294967296]", "overflows"});
}

TEST_F(CorruptFile, BadDataOffsets) {
  write_raw(path, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})", 8);
  expect_open_error({"tensor 'w': 'data_offsets' must be [begin, end], got an array of 3"});
  write_raw(path, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8);
  expect_open_error({"tensor 'w' has data_offsets [8, 0]: begin is after end"});
  write_raw(path, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8);
  expect_open_error({"two non-negative integers"});
}

TEST_F(CorruptFile, ByteCountDisagreesWithShape) {
  write_raw(path, R"({"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}})", 8);
  expect_open_error({"tensor 'w' has shape [2] and dtype BF16 (4 bytes)", "span 8 bytes"});
}

TEST_F(CorruptFile, TensorBeyondTheFile) {
  // What a truncated download looks like: the header is whole, the data is cut short.
  write_raw(path,
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
            R"("lm_head.weight":{"dtype":"F32","shape":[2000],"data_offsets":[8,8008]}})",
            5000);
  expect_open_error({"tensor 'lm_head.weight' ends at byte 8,008 but the data section has 5,000"});
}

TEST_F(CorruptFile, OverlappingTensors) {
  write_raw(path,
            R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
            16);
  expect_open_error({"tensor 'b' (bytes 8..16) overlaps tensor 'a' (bytes 0..16)"});
}

TEST_F(CorruptFile, GapBetweenTensors) {
  write_raw(path,
            R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
            R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
            12);
  expect_open_error({"bytes 4..8 of the data section belong to no tensor", "'b'"});
}

TEST_F(CorruptFile, TrailingBytesAfterTheLastTensor) {
  write_raw(path, kOneTensor, 12);
  expect_open_error({"the data section has 12 bytes but the tensors cover only 8"});
}

TEST_F(CorruptFile, MetadataMustBeStrings) {
  write_raw(path,
            R"({"__metadata__":{"step":7},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
            8);
  expect_open_error({"'__metadata__' entry 'step' must be a string, got integer"});
}

TEST_F(CorruptFile, NamesWithControlCharactersStayOnOneLine) {
  write_raw(path, R"({"evil\nname":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}})", 1);
  expect_open_error({"'evil\\x0aname'"});
  try {
    SafetensorsFile::open(path);
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos);
  }
}

// ---- model folders and index files --------------------------------------------------

struct ShardedModel : ::testing::Test {
  test::TempDir dir;
  fs::path index = dir / "model.safetensors.index.json";
  void SetUp() override {
    const std::vector<float> v = {1, 2};
    const TensorToWrite a{"a", DType::F32, {2}, bytes_of(v)};
    const TensorToWrite b{"b", DType::F32, {2}, bytes_of(v)};
    write_safetensors(dir / "model-00001-of-00002.safetensors", std::span(&a, 1));
    write_safetensors(dir / "model-00002-of-00002.safetensors", std::span(&b, 1));
  }
  void write_index(const json& weight_map) {
    test::write_text(index,
                     json{{"metadata", {{"total_size", 16}}}, {"weight_map", weight_map}}.dump());
  }
  void expect_open_error(std::initializer_list<std::string> parts) {
    std::vector<std::string> all(parts);
    all.push_back("[safetensors] ");
    try {
      SafetensorsModel::open(dir.path());
      ADD_FAILURE() << "expected an ll::Error";
    } catch (const Error& error) {
      for (const std::string& part : all) EXPECT_CONTAINS(error.what(), part);
    }
  }
};

TEST_F(ShardedModel, OpensAValidIndex) {
  write_index(
      {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}});
  const SafetensorsModel model = SafetensorsModel::open(dir.path());
  EXPECT_EQ(model.tensor_names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(model.read_f32("b"), (std::vector<float>{1, 2}));
  EXPECT_EQ(model.total_bytes(), 16u);
}

TEST_F(ShardedModel, RejectsParentDirectoryEscape) {
  write_index({{"a", "../x.safetensors"}});
  expect_open_error({index.string(), "entry 'a'", "'../x.safetensors'", "'..'"});
}

TEST_F(ShardedModel, RejectsAbsolutePath) {
  write_index({{"a", "/etc/x.safetensors"}});
  expect_open_error({index.string(), "entry 'a'", "'/etc/x.safetensors'", "absolute path"});
}

TEST_F(ShardedModel, RejectsSubfolderPath) {
  write_index({{"a", "sub/x.safetensors"}});
  expect_open_error({index.string(), "'sub/x.safetensors'", "not a file name"});
}

TEST_F(ShardedModel, MissingShard) {
  write_index(
      {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00003-of-00003.safetensors"}});
  expect_open_error({index.string(), "shard 'model-00003-of-00003.safetensors' is missing"});
}

TEST_F(ShardedModel, TensorNotInItsShard) {
  write_index(
      {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00001-of-00002.safetensors"}});
  expect_open_error({index.string(), "tensor 'b'", "has no such tensor"});
}

TEST_F(ShardedModel, WeightMapTypesChecked) {
  write_index({{"a", 3}});
  expect_open_error({index.string(), "entry 'a' must be a string", "got integer"});
  test::write_text(index, R"({"metadata": {}})");
  expect_open_error({index.string(), "has no 'weight_map'"});
  test::write_text(index, R"({"weight_map": [1]})");
  expect_open_error({index.string(), "'weight_map' must be an object, got array"});
  test::write_text(index, R"({"weight_map": {"a": )");
  expect_open_error({index.string(), "not valid JSON"});
}

TEST_F(ShardedModel, FolderWithoutWeights) {
  fs::remove(dir / "model-00001-of-00002.safetensors");
  expect_open_error({dir.path().string(), "neither model.safetensors nor"});
}

// ---- fuzz-style: damaged headers end in ll::Error, never a crash -----------------------

TEST(SafetensorsFuzz, RandomTruncationsAndByteFlipsNeverCrash) {
  const std::vector<float> f32(6, 1.0f);
  const std::vector<uint16_t> half(4, 0x3c00);
  const TensorToWrite tensors[] = {{"model.layers.0.w", DType::F32, {2, 3}, bytes_of(f32)},
                                   {"b", DType::BF16, {4}, bytes_of(half)},
                                   {"h", DType::F16, {2, 2}, bytes_of(half)}};
  test::TempDir dir;
  const fs::path valid = dir / "valid.safetensors";
  write_safetensors(valid, tensors, {{"format", "pt"}});
  const std::vector<std::byte> original = read_bytes(valid);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, original.data(), 8);
  const size_t header_end = 8 + static_cast<size_t>(header_bytes);

  std::mt19937 rng(1234);  // fixed seed: a failure reproduces
  const std::string json_chars = "{}[]\",:-0123456789eE.ntfu\\ ";
  const fs::path path = dir / "fuzz.safetensors";
  int opened = 0;
  int rejected = 0;
  for (int round = 0; round < 3000; ++round) {
    std::vector<std::byte> bytes = original;
    const int kind = static_cast<int>(rng() % 3);
    if (kind == 0) {
      bytes.resize(rng() % bytes.size());
    } else {
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        const size_t at = rng() % header_end;  // the length field and the JSON
        bytes[at] = kind == 1 ? static_cast<std::byte>(rng() & 0xff)
                              : static_cast<std::byte>(json_chars[rng() % json_chars.size()]);
      }
    }
    // Remove, then create: rewriting through O_TRUNC makes ext4 flush to disk on close
    // (its auto_da_alloc heuristic), which made this test take seconds instead of ms.
    fs::remove(path);
    write_bytes(path, bytes);
    try {
      const SafetensorsFile file = SafetensorsFile::open(path);
      uint64_t sum = 0;  // touch every byte the header claims, so ASan sees any overrun
      for (const TensorInfo& info : file.tensors()) {
        for (const std::byte b : file.data(info)) sum += static_cast<uint8_t>(b);
      }
      EXPECT_LE(sum, 255u * bytes.size());
      ++opened;
    } catch (const Error& error) {
      EXPECT_CONTAINS(error.what(), path.string());
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 1000);  // most damage is detected...
  EXPECT_GT(opened, 0);       // ...and some (e.g. a changed digit in metadata) is harmless
}

}  // namespace
}  // namespace ll
