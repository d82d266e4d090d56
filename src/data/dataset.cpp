// The data pipeline: see dataset.h.
#include "data/dataset.h"

#include <limits>

#include "core/error.h"

namespace ll {

namespace {

constexpr size_t kProblemsKept = 5;

SplitStats encode_split(const std::vector<uint64_t>& rows, const ConvertedRows& converted,
                        const ExampleEncoder& encoder, const DataOptions& options,
                        int32_t pad_token, TokenSequences& out) {
  SplitStats stats;
  PackingStats packing;
  if (options.layout == SequenceLayout::Packed) {
    SequencePacker packer(options.max_seq_length);
    for (uint64_t row : rows) {
      if (!converted.good[row]) continue;
      packer.add(encoder.encode(converted.examples[row]));
    }
    out = packer.finish();
    packing = packer.stats();
  } else {
    std::vector<TokenizedExample> documents;
    documents.reserve(rows.size());
    for (uint64_t row : rows) {
      if (converted.good[row]) documents.push_back(encoder.encode(converted.examples[row]));
    }
    out = pad_documents(documents, options.max_seq_length, pad_token, &packing);
  }
  stats.rows = packing.documents;
  stats.tokens = packing.tokens;
  stats.label_tokens = packing.label_tokens;
  stats.sequences = packing.sequences;
  stats.rows_longer_than_sequence = packing.long_documents;
  stats.dropped_tokens = packing.dropped_tokens;
  return stats;
}

nlohmann::json split_json(const SplitStats& s) {
  return {{"rows", s.rows},
          {"tokens", s.tokens},
          {"label_tokens", s.label_tokens},
          {"sequences", s.sequences},
          {"rows_longer_than_sequence", s.rows_longer_than_sequence},
          {"dropped_tokens", s.dropped_tokens}};
}

}  // namespace

SplitPlan default_split_plan(Preset preset) {
  if (preset == Preset::Sql) return SplitPlan{23, 50000, 500};
  return SplitPlan{23, std::numeric_limits<uint64_t>::max(), 0};
}

int32_t default_concat_token(Preset preset, const Tokenizer& tokenizer,
                             const ChatTemplate& chat_template) {
  if (preset == Preset::Sql) {
    if (const auto id = tokenizer.token_to_id("<|end_of_text|>")) return *id;
  }
  const std::string& eos = chat_template.eos_token();
  check(!eos.empty(), "data",
        "the tokenizer_config.json has no eos_token, which packing puts between documents");
  const auto id = tokenizer.token_to_id(eos);
  check(id.has_value(), "data", "eos_token '" + eos + "' is not in the tokenizer's vocabulary");
  return *id;
}

ConvertedRows convert_records(const RecordFile& records, Preset preset, BadRows policy) {
  ConvertedRows out;
  const size_t rows = records.records.size();
  out.examples.resize(rows);
  out.good.assign(rows, 0);
  for (size_t i = 0; i < rows; ++i) {
    const Record& record = records.records[i];
    std::string problem = record.problem;
    if (problem.empty()) {
      const std::string what = record_to_example(preset, record.value, out.examples[i]);
      if (!what.empty()) {
        problem = records.path + ":" + std::to_string(record.line) + ": " + what;
        if (policy == BadRows::Fail) fail("data", problem);
      }
    }
    if (problem.empty()) {
      out.good[i] = 1;
    } else {
      ++out.bad_rows;
      if (out.problems.size() < kProblemsKept) out.problems.push_back(std::move(problem));
    }
  }
  return out;
}

PreparedData prepare_records(const RecordFile& records, const Tokenizer& tokenizer,
                             const ChatTemplate& chat_template, const DataOptions& options) {
  if (options.loss_mask == LossMask::AssistantOnly && options.preset == Preset::Text) {
    fail("data",
         "the completion-only loss needs a conversation preset (sql, messages or "
         "alpaca); the text preset has no prompt to leave out");
  }
  check(options.max_seq_length > 0, "data", "max_seq_length must be at least 1");
  const ConvertedRows converted = convert_records(records, options.preset, options.bad_rows);
  const uint64_t rows = records.records.size();
  const RowSplit split = split_rows(rows, options.split, records.path);

  const int32_t concat = options.concat_token
                             ? *options.concat_token
                             : default_concat_token(options.preset, tokenizer, chat_template);
  const ExampleEncoder encoder(tokenizer, chat_template, options.loss_mask, concat);
  const int32_t pad = options.pad_token.value_or(concat);

  PreparedData out;
  DataStats& stats = out.stats;
  stats.path = records.path;
  stats.preset = options.preset;
  stats.split = options.split;
  stats.max_seq_length = options.max_seq_length;
  stats.loss_mask = options.loss_mask;
  stats.layout = options.layout;
  stats.concat_token = concat;
  stats.rows = rows;
  stats.bad_rows = converted.bad_rows;
  stats.bad_row_problems = converted.problems;
  stats.unused_rows = rows - split.train.size() - split.eval.size();
  stats.train = encode_split(split.train, converted, encoder, options, pad, out.train);
  stats.eval = encode_split(split.eval, converted, encoder, options, pad, out.eval);
  return out;
}

PreparedData prepare_data(const std::filesystem::path& file, const Tokenizer& tokenizer,
                          const ChatTemplate& chat_template, const DataOptions& options) {
  return prepare_records(read_records(file, options.bad_rows), tokenizer, chat_template, options);
}

nlohmann::json data_stats_to_json(const DataStats& stats) {
  return {{"data", stats.path},
          {"preset", preset_name(stats.preset)},
          {"seed", stats.split.seed},
          {"max_seq_length", stats.max_seq_length},
          {"loss", stats.loss_mask == LossMask::AllTokens ? "all_tokens" : "assistant_only"},
          {"layout", stats.layout == SequenceLayout::Packed ? "packed" : "padded"},
          {"concat_token", stats.concat_token},
          {"rows", stats.rows},
          {"bad_rows", stats.bad_rows},
          {"unused_rows", stats.unused_rows},
          {"bad_row_problems", stats.bad_row_problems},
          {"train", split_json(stats.train)},
          {"eval", split_json(stats.eval)}};
}

SplitPlan DatasetSelection::split_plan() const {
  SplitPlan plan = default_split_plan(preset);
  if (seed) plan.seed = *seed;
  if (train_rows) plan.train_rows = *train_rows;
  if (eval_rows) plan.eval_rows = *eval_rows;
  return plan;
}

DatasetSelection DatasetSelection::from_flags(std::string_view preset, bool skip_bad_rows,
                                              std::optional<uint64_t> seed,
                                              std::optional<uint64_t> train_rows,
                                              std::optional<uint64_t> eval_rows) {
  DatasetSelection selection;
  selection.preset = parse_preset(preset);
  selection.bad_rows = skip_bad_rows ? BadRows::Skip : BadRows::Fail;
  selection.seed = seed;
  selection.train_rows = train_rows;
  selection.eval_rows = eval_rows;
  return selection;
}

DataOptions DatasetSelection::data_options() const {
  DataOptions options;
  options.preset = preset;
  options.bad_rows = bad_rows;
  options.split = split_plan();
  return options;
}

}  // namespace ll
