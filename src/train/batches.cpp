// See batches.h.
#include "train/batches.h"

#include <algorithm>

#include "backend/ops.h"
#include "core/error.h"
#include "core/random.h"
#include "data/numpy_random.h"

namespace ll {

TokenBatch make_token_batch(const TokenSequences& sequences, std::span<const uint64_t> indices) {
  check(!indices.empty(), "batch", "a micro-batch needs at least one sequence");
  const int64_t seq_len = sequences.seq_length;
  TokenBatch batch;
  batch.rows = static_cast<int64_t>(indices.size());
  batch.seq_len = seq_len;
  const size_t n = static_cast<size_t>(batch.rows * seq_len);
  batch.input_ids.resize(n);
  batch.targets.resize(n);
  batch.positions.resize(n);
  batch.document_starts.reserve(indices.size());
  for (size_t row = 0; row < indices.size(); ++row) {
    check(indices[row] < sequences.size(), "batch",
          "sequence " + std::to_string(indices[row]) + " is out of range (" +
              std::to_string(sequences.size()) + " sequences)");
    const SequenceView seq = sequences.sequence(indices[row]);
    int32_t* ids = batch.input_ids.data() + row * static_cast<size_t>(seq_len);
    int32_t* targets = batch.targets.data() + row * static_cast<size_t>(seq_len);
    int32_t* positions = batch.positions.data() + row * static_cast<size_t>(seq_len);
    std::copy(seq.ids.begin(), seq.ids.end(), ids);

    // starts[d] <= t < starts[d + 1]: token t belongs to document d.
    const std::span<const uint32_t> starts = seq.document_starts;
    size_t doc = 0;
    for (int64_t t = 0; t < seq_len; ++t) {
      while (doc + 1 < starts.size() && starts[doc + 1] <= t) ++doc;
      const uint32_t doc_start = starts.empty() ? 0 : starts[doc];
      positions[t] = static_cast<int32_t>(t - doc_start);
      const bool next_in_same_doc =
          t + 1 < seq_len && !(doc + 1 < starts.size() && starts[doc + 1] == t + 1);
      targets[t] = next_in_same_doc && seq.labels[static_cast<size_t>(t + 1)] != 0
                       ? seq.ids[static_cast<size_t>(t + 1)]
                       : kIgnoreLabel;
    }
    batch.document_starts.emplace_back(starts.begin(), starts.end());
    if (batch.document_starts.back().empty()) batch.document_starts.back().push_back(0);
  }
  return batch;
}

std::vector<uint64_t> epoch_order(uint64_t count, uint64_t shuffle_seed, int64_t epoch) {
  return numpy_permutation(count, shuffle_seed + static_cast<uint64_t>(epoch));
}

namespace {}  // namespace

uint64_t micro_batch_dropout_seed(uint64_t seed, int64_t step, int64_t micro) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(step)) ^
                    static_cast<uint64_t>(micro));
}

LossTotals sum_sequence_losses(LlamaLoraModel& model, const TokenSequences& sequences,
                               uint64_t batch_rows, uint64_t shard, uint64_t shards) {
  LossTotals totals;
  std::vector<uint64_t> rows;
  for (uint64_t begin = shard * batch_rows; begin < sequences.size();
       begin += batch_rows * shards) {
    rows.clear();
    for (uint64_t i = begin; i < std::min<uint64_t>(sequences.size(), begin + batch_rows); ++i) {
      rows.push_back(i);
    }
    const TokenBatch batch = make_token_batch(sequences, rows);
    totals.label_tokens += batch.target_count();
    totals.sum += model.forward_loss_sum(batch);
  }
  return totals;
}

}  // namespace ll
