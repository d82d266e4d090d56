// Tests of formats/torch_checkpoint, torch_pickle and zip_stored: torch.save files of every dtype
// we read (written by scripts/fixtures/make_torch_fixtures.py with torch 2.15.0) equal their
// safetensors twin bit for bit, views (transposed, offset, shared storage) come out row-major,
// a sharded pytorch_model.bin folder opens like a safetensors one, and every bad input (a pickle
// naming os.system, a refused opcode, a missing storage, a compressed entry, truncation, random
// damage) ends in a one-line ll::Error naming the file, never a crash (run under ASan).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "core/error.h"
#include "core/file.h"
#include "formats/safetensors.h"
#include "formats/torch_checkpoint.h"
#include "formats/torch_pickle.h"
#include "formats/zip_stored.h"
#include "safetensors_test_util.h"
#include "test_util.h"

namespace ll {
namespace {

using namespace std::string_literals;

#define EXPECT_CONTAINS(text, part)                          \
  EXPECT_NE(std::string(text).find(part), std::string::npos) \
      << "expected to find: " << (part) << "\n                in: " << (text)

fs::path torch_fixture(const std::string& name) {
  return test::fixtures() / "torch" / name;
}

std::vector<std::byte> bytes_of(std::string_view text) {
  const auto* begin = reinterpret_cast<const std::byte*>(text.data());
  return {begin, begin + text.size()};
}

std::vector<std::byte> span_copy(std::span<const std::byte> bytes) {
  return {bytes.begin(), bytes.end()};
}

void write_bytes(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(TorchCheckpoint, EveryDtypeEqualsItsSafetensorsTwinBitForBit) {
  const auto file = TorchStateDictFile::open(torch_fixture("dtypes.pt"));
  const SafetensorsFile twin = SafetensorsFile::open(torch_fixture("dtypes.safetensors"));
  test::expect_same_tensors_by_name(*file, twin);
  EXPECT_EQ(file->find("f16")->dtype, DType::F16);
  EXPECT_EQ(file->find("bf16")->dtype, DType::BF16);
  EXPECT_EQ(file->find("i64")->dtype, DType::I64);
  EXPECT_EQ(file->find("i32")->dtype, DType::I32);
  EXPECT_EQ(file->find("scalar")->shape, std::vector<int64_t>{});
  EXPECT_EQ(file->find("empty")->nbytes, 0u);
}

TEST(TorchCheckpoint, ViewsComeOutRowMajor) {
  // base = arange(12).reshape(3, 4); transposed = base.t(); offset_view = base[1:].
  const auto file = TorchStateDictFile::open(torch_fixture("dtypes.pt"));
  auto floats = [&](const char* name) {
    const auto bytes = file->data(*file->find(name));
    std::vector<float> out(bytes.size() / 4);
    std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
  };
  EXPECT_EQ(file->find("transposed")->shape, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(floats("transposed"), (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  EXPECT_EQ(floats("offset_view"), (std::vector<float>{4, 5, 6, 7, 8, 9, 10, 11}));
  // The contiguous views are read in place: offset_view starts 16 bytes into base's storage.
  EXPECT_EQ(file->find("offset_view")->offset, file->find("shared_a")->offset + 16);
  EXPECT_EQ(floats("param"), (std::vector<float>{0.5f, 0.25f}));
}

TEST(TorchCheckpoint, Zip64RecordsReadTheSame) {
  const auto file = TorchStateDictFile::open(torch_fixture("zip64.pt"));
  test::expect_same_tensors_by_name(*file,
                                    SafetensorsFile::open(torch_fixture("dtypes.safetensors")));
}

TEST(TorchCheckpoint, ShardedBinFolderOpensLikeItsSafetensorsTwin) {
  const SafetensorsModel bin = SafetensorsModel::open(torch_fixture("gqa_tied_bin"));
  const SafetensorsModel twin =
      SafetensorsModel::open(test::fixtures() / "golden" / "gqa_tied" / "model");
  ASSERT_EQ(bin.tensor_names(), twin.tensor_names());
  EXPECT_EQ(bin.files().size(), 2u);
  for (const std::string& name : twin.tensor_names()) {
    SCOPED_TRACE(name);
    EXPECT_EQ(bin.info(name).shape, twin.info(name).shape);
    EXPECT_EQ(span_copy(bin.data(name)), span_copy(twin.data(name)));
  }
}

TEST(TorchCheckpoint, SafetensorsWinsOverBinAndTheErrorNamesBoth) {
  test::TempDir dir;
  const std::string message = test::error_of([&] { SafetensorsModel::open(dir.path()); });
  EXPECT_CONTAINS(message, "model.safetensors");
  EXPECT_CONTAINS(message, "pytorch_model.bin");
  // A folder with both: transformers takes model.safetensors, so do we.
  fs::copy_file(torch_fixture("dtypes.safetensors"), dir / "model.safetensors");
  fs::copy_file(torch_fixture("bool.pt"), dir / "pytorch_model.bin");  // would be refused
  EXPECT_EQ(SafetensorsModel::open(dir.path()).files().size(), 1u);
}

TEST(TorchCheckpoint, RefusesAPickleThatNamesOsSystem) {
  const fs::path path = torch_fixture("os_system.pt");
  const std::string message = test::error_of([&] { TorchCheckpoint::open(path); });
  EXPECT_CONTAINS(message, path.string());
  EXPECT_CONTAINS(message, "refuses global 'os.system'");
}

TEST(TorchCheckpoint, RefusesBadInputNamingFileAndProblem) {
  const struct {
    const char* file;
    const char* part;
  } cases[] = {
      {"bad_opcode.pt", "opcode 0x81 (NEWOBJ) is not allowed"},
      {"missing_storage.pt", "storage '0' of tensor 'f32' is missing"},
      {"compressed.pt", "is compressed (method 8)"},
      {"bool.pt", "torch.BoolStorage tensor, which llama-lora does not read"},
      {"expanded.pt", "tensor 'e' (shape [1000]) is a strided view that repeats its storage's"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const fs::path path = torch_fixture(c.file);
    const std::string message = test::error_of([&] { TorchStateDictFile::open(path); });
    EXPECT_CONTAINS(message, path.string());
    EXPECT_CONTAINS(message, c.part);
  }
}

TEST(TorchCheckpoint, EveryTruncationIsAnError) {
  const std::string whole = read_file(torch_fixture("dtypes.pt"));
  test::TempDir dir;
  const fs::path path = dir / "cut.pt";
  for (size_t size = 0; size < whole.size(); size += 13) {
    SCOPED_TRACE(size);
    write_bytes(path, std::string_view(whole).substr(0, size));
    const std::string message = test::error_of([&] { TorchStateDictFile::open(path); });
    EXPECT_CONTAINS(message, "[torch] " + path.string() + ": ");
  }
}

TEST(TorchCheckpoint, RandomDamageNeverCrashes) {
  // Flipped bytes anywhere (zip records, pickle, tensor data): either the file still reads
  // (damage inside tensor bytes, or in fields the reader does not use) or one ll::Error.
  const std::string whole = read_file(torch_fixture("dtypes.pt"));
  test::TempDir dir;
  const fs::path path = dir / "damaged.pt";
  std::mt19937 rng(15);
  int errors = 0;
  for (int trial = 0; trial < 400; ++trial) {
    std::string damaged = whole;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) damaged[rng() % damaged.size()] = static_cast<char>(rng());
    write_bytes(path, damaged);
    try {
      const auto file = TorchStateDictFile::open(path);
      for (const TensorInfo& info : file->tensors()) (void)span_copy(file->data(info));
    } catch (const Error& error) {
      ++errors;
      EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos);
    }
  }
  EXPECT_GT(errors, 0);
}

// Pickles written opcode by opcode.
PickleRef unpickle(std::string_view bytes) {
  const std::vector<std::byte> data = bytes_of(bytes);
  return read_pickle(data, "torch", "test.pkl");
}

TEST(TorchPickle, ReadsPlainValues) {
  // (1, -2, True, None): PROTO 2, MARK, BININT1, BININT, NEWTRUE, NONE, TUPLE, STOP.
  const PickleRef tuple = unpickle("\x80\x02(K\x01J\xfe\xff\xff\xff\x88Nt."s);
  ASSERT_EQ(tuple->kind, PickleKind::Tuple);
  ASSERT_EQ(tuple->items.size(), 4u);
  EXPECT_EQ(tuple->items[0]->integer, 1);
  EXPECT_EQ(tuple->items[1]->integer, -2);
  EXPECT_TRUE(tuple->items[2]->boolean);
  EXPECT_EQ(tuple->items[3]->kind, PickleKind::None);
  // LONG1 of 6 bytes, negative: -2**40 = 00 00 00 00 00 ff ff ... as two's complement.
  const PickleRef big = unpickle("\x80\x02\x8a\x06\x00\x00\x00\x00\x00\xff."s);
  EXPECT_EQ(big->integer, -(int64_t{1} << 40));
  // BINFLOAT is big-endian: 1.5 = 3f f8 00 .. 00.
  const PickleRef real = unpickle("\x80\x02G\x3f\xf8\x00\x00\x00\x00\x00\x00."s);
  EXPECT_EQ(real->real, 1.5);
  // A dict built with SETITEMS, looked up by key.
  const PickleRef dict = unpickle("\x80\x02}(\x8c\x01kK\x07u."s);
  ASSERT_EQ(dict->kind, PickleKind::Dict);
  ASSERT_NE(dict->get("k"), nullptr);
  EXPECT_EQ(dict->get("k")->integer, 7);
  // set(['a']) as protocol 2 writes it (Optimum Neuron's metadata holds sets): a list.
  const PickleRef set = unpickle(
      "\x80\x02"
      "c__builtin__\nset\n]\x8c\x01"
      "a"
      "a\x85R."s);
  ASSERT_EQ(set->kind, PickleKind::List);
  ASSERT_EQ(set->items.size(), 1u);
  EXPECT_EQ(set->items[0]->text, "a");
}

TEST(TorchPickle, RefusesHostileStructures) {
  const struct {
    std::string bytes;
    const char* part;
  } cases[] = {
      // STACK_GLOBAL 'os' 'system'
      {"\x80\x04\x8c\x02os\x8c\x06system\x93."s, "refuses global 'os.system'"},
      {"\x80\x02"
       "cbuiltins\neval\n."s,
       "refuses global 'builtins.eval'"},
      // a list appended to itself: EMPTY_LIST BINPUT 0 BINGET 0 APPEND
      {"\x80\x02]q\x00h\x00"
       "a."s,
       "inside itself"},
      // a list put in a tuple, then changed: EMPTY_LIST q0 TUPLE1 POP BINGET 0 K1 APPEND
      {"\x80\x02]q\x00\x85"
       "0h\x00K\x01"
       "a."s,
       "already put inside"},
      {"\x80\x02h\x05."s, "memo entry 5 was never stored"},
      {"\x80\x02\x8a\x09"s, "does not fit in 64 bits"},
      {"\x80\x02X\xff\x00\x00\x00"
       "ab"s,
       "truncated"},
      {"\x80\x02K\x01K\x02."s, "leaves 2 values"},
      {"\x80\x02(K\x01"s, "truncated"},
      {"\x80\x02"
       "a."s,
       "APPEND on an empty stack"},
      {"\x80\x02"
       "ccollections\nOrderedDict\nK\x01\x85R."s,
       "only read called with no arguments"},
      {"\x80\x02"
       "ctorch\nfloat32\n)R."s,
       "'torch.float32' cannot be called"},
      {"\x80\x02i"s, "(INST) is not allowed"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.part);
    const std::string message = test::error_of([&] { unpickle(c.bytes); });
    EXPECT_CONTAINS(message, "[torch] test.pkl: byte ");
    EXPECT_CONTAINS(message, c.part);
  }
  // 65 nested lists: past the depth limit. 64 are fine.
  auto nested = [](int depth) {
    std::string bytes = "\x80\x02"s;
    for (int i = 0; i < depth; ++i) bytes += "]";
    for (int i = 1; i < depth; ++i) bytes += "a";
    return bytes + ".";
  };
  EXPECT_EQ(unpickle(nested(65))->depth, 64);
  EXPECT_CONTAINS(test::error_of([&] { unpickle(nested(66)); }), "nest more than 64 deep");
}

TEST(ZipStored, Crc32OfTheCheckString) {
  const std::vector<std::byte> data = bytes_of("123456789");
  EXPECT_EQ(zip_crc32(data), 0xCBF43926u);
}

}  // namespace
}  // namespace ll
