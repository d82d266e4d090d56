// Packing and padding token documents into sequences: see packing.h.
#include "data/packing.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace ll {

namespace {

void check_seq_length(uint32_t seq_length) {
  check(seq_length > 0, "data", "max_seq_length must be at least 1");
}

void count_document(const TokenizedExample& document, uint32_t seq_length, PackingStats& stats) {
  ++stats.documents;
  stats.tokens += document.ids.size();
  stats.label_tokens +=
      std::accumulate(document.labels.begin(), document.labels.end(), uint64_t{0});
  if (document.ids.size() > seq_length) ++stats.long_documents;
}

}  // namespace

SequenceView TokenSequences::sequence(size_t index) const {
  const size_t begin = index * seq_length;
  const auto starts_begin = static_cast<size_t>(document_offsets[index]);
  const auto starts_end = static_cast<size_t>(document_offsets[index + 1]);
  return {std::span(ids).subspan(begin, seq_length), std::span(labels).subspan(begin, seq_length),
          std::span(document_starts).subspan(starts_begin, starts_end - starts_begin),
          valid_tokens[index]};
}

SequencePacker::SequencePacker(uint32_t seq_length) {
  check_seq_length(seq_length);
  out_.seq_length = seq_length;
  out_.document_offsets.push_back(0);
}

void SequencePacker::add(const TokenizedExample& document) {
  const uint32_t seq_length = out_.seq_length;
  count_document(document, seq_length, stats_);
  const size_t n = document.ids.size();
  if (fill_ > 0 && n > 0) out_.document_starts.push_back(fill_);  // starts inside this sequence
  size_t pos = 0;
  while (pos < n) {
    if (fill_ == 0) out_.document_starts.push_back(0);  // a sequence opens: at a start or mid-way
    const size_t take = std::min<size_t>(n - pos, seq_length - fill_);
    out_.ids.insert(out_.ids.end(), document.ids.begin() + static_cast<std::ptrdiff_t>(pos),
                    document.ids.begin() + static_cast<std::ptrdiff_t>(pos + take));
    out_.labels.insert(out_.labels.end(),
                       document.labels.begin() + static_cast<std::ptrdiff_t>(pos),
                       document.labels.begin() + static_cast<std::ptrdiff_t>(pos + take));
    fill_ += static_cast<uint32_t>(take);
    pos += take;
    if (fill_ == seq_length) close_sequence();
  }
}

void SequencePacker::close_sequence() {
  out_.valid_tokens.push_back(out_.seq_length);
  out_.document_offsets.push_back(out_.document_starts.size());
  ++stats_.sequences;
  fill_ = 0;
}

TokenSequences SequencePacker::finish() {
  if (fill_ > 0) {  // the incomplete tail, dropped as TRL drops it
    stats_.dropped_tokens += fill_;
    const size_t keep = out_.valid_tokens.size() * out_.seq_length;
    out_.ids.resize(keep);
    out_.labels.resize(keep);
    out_.document_starts.resize(static_cast<size_t>(out_.document_offsets.back()));
    fill_ = 0;
  }
  TokenSequences done = std::move(out_);
  out_ = TokenSequences{};
  out_.seq_length = done.seq_length;
  out_.document_offsets.push_back(0);
  return done;
}

TokenSequences pack_documents(std::span<const TokenizedExample> documents, uint32_t seq_length,
                              PackingStats* stats) {
  SequencePacker packer(seq_length);
  for (const TokenizedExample& document : documents) packer.add(document);
  TokenSequences out = packer.finish();
  if (stats) *stats = packer.stats();
  return out;
}

TokenSequences pad_documents(std::span<const TokenizedExample> documents, uint32_t seq_length,
                             int32_t pad_token, PackingStats* stats) {
  check_seq_length(seq_length);
  PackingStats counts;
  TokenSequences out;
  out.seq_length = seq_length;
  out.ids.reserve(documents.size() * seq_length);
  out.labels.reserve(documents.size() * seq_length);
  out.document_offsets.push_back(0);
  for (const TokenizedExample& document : documents) {
    count_document(document, seq_length, counts);
    const size_t take = std::min<size_t>(document.ids.size(), seq_length);
    out.ids.insert(out.ids.end(), document.ids.begin(),
                   document.ids.begin() + static_cast<std::ptrdiff_t>(take));
    out.labels.insert(out.labels.end(), document.labels.begin(),
                      document.labels.begin() + static_cast<std::ptrdiff_t>(take));
    out.ids.resize(out.ids.size() + (seq_length - take), pad_token);
    out.labels.resize(out.labels.size() + (seq_length - take), 0);  // padding is never a target
    out.valid_tokens.push_back(static_cast<uint32_t>(take));
    out.document_starts.push_back(0);
    out.document_offsets.push_back(out.document_starts.size());
    counts.dropped_tokens += document.ids.size() - take;
    ++counts.sequences;
  }
  if (stats) *stats = counts;
  return out;
}

}  // namespace ll
