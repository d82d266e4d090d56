// Token documents -> fixed-length training sequences.
//
// Packed (the seed's SFT packing, TRL ConstantLengthDataset): documents (each already ending
// with its concat/EOS token, see data/example_encoder.h) are concatenated in order and cut
// into seq_length pieces; the last, incomplete piece is dropped. We record where each document
// starts inside every sequence, so that attention can stay within a document; a sequence may
// begin in the middle of a document, and its first document start is then still 0.
// Unlike TRL, which concatenates per buffer of ~3.7M characters (dropping a tail per buffer)
// and shuffles the buffer and its sequences with Python's `random`, we pack the whole split in
// its shuffled order with one tail: deterministic and the same on every rank.
//
// Padded: one document per sequence, cut to seq_length when longer (the rest is lost and
// counted), padded with pad_token (not a target) when shorter.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "data/example_encoder.h"

namespace ll {

struct SequenceView {
  std::span<const int32_t> ids;               // [seq_length]
  std::span<const uint8_t> labels;            // [seq_length] 1 = target
  std::span<const uint32_t> document_starts;  // ascending, first is 0
  uint32_t valid_tokens = 0;                  // tokens before the padding (seq_length if packed)
};

// All sequences of one split, stored flat.
struct TokenSequences {
  uint32_t seq_length = 0;
  std::vector<int32_t> ids;                // [sequences, seq_length]
  std::vector<uint8_t> labels;             // [sequences, seq_length]
  std::vector<uint32_t> valid_tokens;      // [sequences]
  std::vector<uint32_t> document_starts;   // every sequence's starts, one after another
  std::vector<uint64_t> document_offsets;  // [sequences + 1] into document_starts

  size_t size() const { return valid_tokens.size(); }
  SequenceView sequence(size_t index) const;
};

struct PackingStats {
  uint64_t documents = 0;
  uint64_t tokens = 0;          // document tokens, concat tokens included
  uint64_t label_tokens = 0;    // of those, training targets
  uint64_t long_documents = 0;  // documents longer than seq_length
  uint64_t dropped_tokens = 0;  // packed: the incomplete tail; padded: what truncation cut
  uint64_t sequences = 0;
};

// Packs documents as they come (no need to hold them all).
class SequencePacker {
 public:
  explicit SequencePacker(uint32_t seq_length);
  void add(const TokenizedExample& document);
  // Drops the incomplete last sequence and returns the result; the packer is then empty.
  TokenSequences finish();
  const PackingStats& stats() const { return stats_; }

 private:
  void close_sequence();

  TokenSequences out_;
  PackingStats stats_;
  uint32_t fill_ = 0;       // tokens in the open sequence
  size_t open_starts_ = 0;  // first document start of the open sequence in out_.document_starts
};

TokenSequences pack_documents(std::span<const TokenizedExample> documents, uint32_t seq_length,
                              PackingStats* stats = nullptr);
TokenSequences pad_documents(std::span<const TokenizedExample> documents, uint32_t seq_length,
                             int32_t pad_token, PackingStats* stats = nullptr);

}  // namespace ll
