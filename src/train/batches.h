// Packed token sequences -> the micro-batches the model trains on, and the order in which
// a run visits them.
//
// A batch row is one packed sequence (data/packing.h) with:
//   input_ids[t] = ids[t]
//   targets[t]   = ids[t+1] when token t+1 is a training target (labels[t+1] = 1), else -100;
//                  also -100 at the last position (nothing follows inside the sequence) and
//                  where t+1 starts a new document: attention stays inside a document, so a
//                  token must not be asked to predict the next document's first token.
//   positions[t] = t - (start of t's document): RoPE positions restart at 0 at every document
//                  start. A sequence that begins in the middle of a document (the packer cut
//                  it) starts at position 0 too, since the start of that document lies in the
//                  previous sequence; the model sees that piece as a document of its own.
//   document_starts = the packer's starts (ascending, first 0), for the attention mask.
// Padded sequences (SequenceLayout::Padded) work the same: the padding is not a target.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "data/packing.h"
#include "model/llama_model.h"

namespace ll {

// One micro-batch from the sequences at `indices` (one row each, in that order).
TokenBatch make_token_batch(const TokenSequences& sequences, std::span<const uint64_t> indices);

// Σ loss and label-token count of a forward pass over every sequence, `batch_rows` rows per
// forward (evaluation: the caller turns off dropout). Mean loss = sum / label_tokens.
// With shards > 1 only batches shard, shard + shards, ... (data-parallel rank `shard` of
// `shards`; the ranks' totals add up to the whole).
struct LossTotals {
  double sum = 0;
  int64_t label_tokens = 0;
};
LossTotals sum_sequence_losses(LlamaLoraModel& model, const TokenSequences& sequences,
                               uint64_t batch_rows, uint64_t shard = 0, uint64_t shards = 1);

// The order of the training sequences in epoch `epoch` (0-based): numpy's
// default_rng(shuffle_seed + epoch).permutation(count) (data/numpy_random.h). Hugging Face's
// Trainer shuffles with torch's RandomSampler, whose generator we do not reproduce, so the
// order differs from a Python run with the same seed; it is the same on every machine and
// every resume, which is what exact resumption needs.
std::vector<uint64_t> epoch_order(uint64_t count, uint64_t shuffle_seed, int64_t epoch);

// The seed of the LoRA dropout masks of micro-batch `micro` of optimizer step `step`
// (0-based), a hash of (seed, step, micro): a resumed run draws the same masks.
uint64_t micro_batch_dropout_seed(uint64_t seed, int64_t step, int64_t micro);

}  // namespace ll
