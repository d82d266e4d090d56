// Packing: lengths, concat tokens between documents, document starts, the dropped tail, and the
// loss mask carried along; padding. Expectations worked out by hand in the comments.
#include <gtest/gtest.h>

#include "core/error.h"
#include "data/packing.h"

namespace ll {
namespace {

constexpr int32_t E = 99;  // the concat (EOS) token each document already ends with

std::vector<TokenizedExample> four_documents() {
  return {{{1, 2, E}, {0, 1, 1}},
          {{3, 4, 5, 6, E}, {1, 1, 0, 0, 1}},
          {{7, E}, {1, 1}},
          {{8, 9, 10, E}, {1, 1, 1, 1}}};
}

template <class T>
std::vector<T> vec(std::span<const T> s) {
  return std::vector<T>(s.begin(), s.end());
}

TEST(Packing, CutsTheStreamIntoFullSequencesAndDropsTheTail) {
  // Stream (14 tokens): 1 2 E 3 | 4 5 6 E | 7 E 8 9 | 10 E   -> 3 sequences, 2 tail tokens dropped
  PackingStats stats;
  const TokenSequences packed = pack_documents(four_documents(), 4, &stats);
  ASSERT_EQ(packed.size(), 3u);
  EXPECT_EQ(packed.ids.size(), 12u);
  EXPECT_EQ(packed.labels.size(), 12u);

  const SequenceView s0 = packed.sequence(0);
  EXPECT_EQ(vec(s0.ids), (std::vector<int32_t>{1, 2, E, 3}));
  EXPECT_EQ(vec(s0.labels), (std::vector<uint8_t>{0, 1, 1, 1}));
  EXPECT_EQ(vec(s0.document_starts), (std::vector<uint32_t>{0, 3}));
  EXPECT_EQ(s0.valid_tokens, 4u);

  const SequenceView s1 = packed.sequence(1);  // wholly inside document 1: starts mid-document
  EXPECT_EQ(vec(s1.ids), (std::vector<int32_t>{4, 5, 6, E}));
  EXPECT_EQ(vec(s1.labels), (std::vector<uint8_t>{1, 0, 0, 1}));
  EXPECT_EQ(vec(s1.document_starts), (std::vector<uint32_t>{0}));

  const SequenceView s2 = packed.sequence(2);
  EXPECT_EQ(vec(s2.ids), (std::vector<int32_t>{7, E, 8, 9}));
  EXPECT_EQ(vec(s2.labels), (std::vector<uint8_t>{1, 1, 1, 1}));
  EXPECT_EQ(vec(s2.document_starts), (std::vector<uint32_t>{0, 2}));

  EXPECT_EQ(stats.documents, 4u);
  EXPECT_EQ(stats.tokens, 14u);
  EXPECT_EQ(stats.label_tokens, 2u + 3u + 2u + 4u);
  EXPECT_EQ(stats.long_documents, 1u);  // the 5-token one
  EXPECT_EQ(stats.sequences, 3u);
  EXPECT_EQ(stats.dropped_tokens, 2u);
}

TEST(Packing, ADocumentEndingExactlyAtASequenceEndStartsNoEmptyDocument) {
  // seq 5: 3 4 5 6 E | 7 E 1 2 E | 8 9 10 E (tail, 4 dropped)
  const auto docs = four_documents();
  const std::vector<TokenizedExample> ordered = {docs[1], docs[2], docs[0], docs[3]};
  PackingStats stats;
  const TokenSequences packed = pack_documents(ordered, 5, &stats);
  ASSERT_EQ(packed.size(), 2u);
  EXPECT_EQ(vec(packed.sequence(0).document_starts), (std::vector<uint32_t>{0}));
  EXPECT_EQ(vec(packed.sequence(1).ids), (std::vector<int32_t>{7, E, 1, 2, E}));
  EXPECT_EQ(vec(packed.sequence(1).document_starts), (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(stats.dropped_tokens, 4u);
  EXPECT_EQ(packed.document_offsets, (std::vector<uint64_t>{0, 1, 3}));
}

TEST(Packing, StreamingPackerMatchesAndResets) {
  SequencePacker packer(4);
  for (const auto& d : four_documents()) packer.add(d);
  const TokenSequences first = packer.finish();
  EXPECT_EQ(first.ids, pack_documents(four_documents(), 4).ids);
  EXPECT_EQ(packer.finish().size(), 0u);  // nothing left after finish()
  EXPECT_THROW(SequencePacker(0), Error);
}

TEST(Padding, OneDocumentPerSequenceWithMaskedPadding) {
  // seq 4, pad 0: [1 2 E 0] [3 4 5 6](E cut) [7 E 0 0]
  const auto docs = four_documents();
  PackingStats stats;
  const TokenSequences padded = pad_documents(std::span(docs).first(3), 4, 0, &stats);
  ASSERT_EQ(padded.size(), 3u);
  EXPECT_EQ(vec(padded.sequence(0).ids), (std::vector<int32_t>{1, 2, E, 0}));
  EXPECT_EQ(vec(padded.sequence(0).labels), (std::vector<uint8_t>{0, 1, 1, 0}));
  EXPECT_EQ(padded.sequence(0).valid_tokens, 3u);
  EXPECT_EQ(vec(padded.sequence(1).ids), (std::vector<int32_t>{3, 4, 5, 6}));
  EXPECT_EQ(padded.sequence(1).valid_tokens, 4u);
  EXPECT_EQ(vec(padded.sequence(2).labels), (std::vector<uint8_t>{1, 1, 0, 0}));
  EXPECT_EQ(vec(padded.sequence(2).document_starts), (std::vector<uint32_t>{0}));
  EXPECT_EQ(stats.dropped_tokens, 1u);
  EXPECT_EQ(stats.long_documents, 1u);
  EXPECT_EQ(stats.sequences, 3u);
}

}  // namespace
}  // namespace ll
