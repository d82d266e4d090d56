// The data pipeline of `train` and `data-stats`: dataset file -> records -> examples (preset)
// -> shuffle/split -> token documents with loss masks -> fixed-length sequences, plus the
// numbers that describe it.
//
// Bad rows (not JSON, not an object, a field missing or of the wrong type) fail the run with
// "[data] PATH:LINE: ..." unless BadRows::Skip. Skipped rows are dropped AFTER the shuffle and
// split: the permutation covers every row of the file, and a bad row only leaves a hole in the
// split it fell into. So the good rows land in exactly the split (and order) that the seed's
// `dataset.shuffle(seed=23).select(...)` gives them, and fixing a bad row later moves no other
// row; the price is that a split may come out a few rows short of train_rows / eval_rows.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/example_encoder.h"
#include "data/packing.h"
#include "data/presets.h"
#include "data/records.h"
#include "data/split.h"

namespace ll {

enum class SequenceLayout { Packed, Padded };  // see data/packing.h

// sql: the seed's seed 23, 50,000 train and 500 eval rows. Other presets: seed 23, every row
// for training and none held out unless asked.
SplitPlan default_split_plan(Preset preset);

// The token after every document. The sql recipe forces `<|end_of_text|>` (the seed sets
// tokenizer.eos_token_id = 128001) when the vocabulary has it; otherwise, and for the other
// presets, the eos_token of tokenizer_config.json. Error when there is none.
int32_t default_concat_token(Preset preset, const Tokenizer& tokenizer,
                             const ChatTemplate& chat_template);

struct DataOptions {
  Preset preset = Preset::Sql;
  BadRows bad_rows = BadRows::Fail;
  SplitPlan split = default_split_plan(Preset::Sql);  // set from the preset you choose
  uint32_t max_seq_length = 1024;
  LossMask loss_mask = LossMask::AllTokens;  // AssistantOnly: `--completion_only_loss`
  SequenceLayout layout = SequenceLayout::Packed;
  std::optional<int32_t> concat_token;  // default: default_concat_token()
  std::optional<int32_t> pad_token;     // Padded layout; default: the concat token (pad = eos)
};

// Which rows of a file are read and how bad rows are treated: what train, eval, compare and
// data-stats each take from their flags (an unset field: the preset's default split plan).
// The one place their split is derived, so the held-out rows of `eval` and `compare` are the
// rows `train` held out.
struct DatasetSelection {
  Preset preset = Preset::Sql;
  BadRows bad_rows = BadRows::Fail;
  std::optional<uint64_t> seed;
  std::optional<uint64_t> train_rows;
  std::optional<uint64_t> eval_rows;

  // From the row flags every command that reads a dataset has (--preset, --skip_bad_rows,
  // --seed, --train_rows, --eval_rows; unset ones take the preset's plan).
  static DatasetSelection from_flags(std::string_view preset, bool skip_bad_rows,
                                     std::optional<uint64_t> seed,
                                     std::optional<uint64_t> train_rows,
                                     std::optional<uint64_t> eval_rows);

  SplitPlan split_plan() const;
  DataOptions data_options() const;  // preset, split and bad rows; the rest as DataOptions{}
};

struct SplitStats {
  uint64_t rows = 0;          // good rows in the split
  uint64_t tokens = 0;        // document tokens, concat tokens included
  uint64_t label_tokens = 0;  // of those, training targets
  uint64_t sequences = 0;     // packed (or padded) sequences
  uint64_t rows_longer_than_sequence = 0;
  uint64_t dropped_tokens = 0;  // packed: the incomplete tail; padded: truncated tokens
};

struct DataStats {
  std::string path;
  Preset preset = Preset::Sql;
  SplitPlan split;
  uint32_t max_seq_length = 0;
  LossMask loss_mask = LossMask::AllTokens;
  SequenceLayout layout = SequenceLayout::Packed;
  int32_t concat_token = -1;
  uint64_t rows = 0;                          // rows in the file, bad ones included
  uint64_t bad_rows = 0;                      // skipped (BadRows::Skip)
  uint64_t unused_rows = 0;                   // in neither split (past train_rows + eval_rows)
  std::vector<std::string> bad_row_problems;  // the first few, "PATH:LINE: ..."
  SplitStats train;
  SplitStats eval;
};

struct PreparedData {
  TokenSequences train;
  TokenSequences eval;
  DataStats stats;
};

PreparedData prepare_data(const std::filesystem::path& file, const Tokenizer& tokenizer,
                          const ChatTemplate& chat_template, const DataOptions& options);
// The same from records already read (e.g. parsed from memory).
PreparedData prepare_records(const RecordFile& records, const Tokenizer& tokenizer,
                             const ChatTemplate& chat_template, const DataOptions& options);

// Examples for every row (converted with the preset) and the rows that are bad. With
// BadRows::Fail the first bad row throws "[data] PATH:LINE: ...".
struct ConvertedRows {
  std::vector<Example> examples;  // [rows]; empty for bad rows
  std::vector<uint8_t> good;      // [rows]
  uint64_t bad_rows = 0;
  std::vector<std::string> problems;  // the first few
};
ConvertedRows convert_records(const RecordFile& records, Preset preset, BadRows policy);

nlohmann::json data_stats_to_json(const DataStats& stats);

}  // namespace ll
