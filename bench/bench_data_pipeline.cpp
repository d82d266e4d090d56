// Data pipeline throughput, stage by stage, on the seed's recipe: read the dataset file (JSON
// parse), apply the sql preset, shuffle/split (numpy permutation, seed 23), render with the
// chat template, tokenize (no special tokens, + concat token), pack into 1024-token sequences.
// Each stage is timed on its own, median of 5 runs; "tokenize (assistant mask)" times the
// offsets-and-mask variant of the tokenize stage (--completion_only_loss) and is not in the
// total, nor is "prepare_data (cold cache)": the whole pipeline in one call, as `train` and
// `data-stats` run it, with a freshly loaded tokenizer (cold word cache) each run. Prints a
// table and, last, one JSON line.
//
//   ./build/release/bench/bench_data_pipeline [DATA] [TOKENIZER]
//
// DATA: a JSONL/JSON sql-create-context file (default ../shared/data/sql-create-context/
// sample-3500.jsonl); TOKENIZER: a folder with tokenizer.json and tokenizer_config.json
// (default ../shared/data/llama3-tokenizer). Defaults are relative to the repository root,
// wherever the command runs.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr int kRuns = 5;
constexpr uint32_t kSeqLength = 1024;

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Runs `stage` kRuns times and returns the median seconds.
double time_stage(const std::function<void()>& stage) {
  std::vector<double> seconds;
  for (int run = 0; run < kRuns; ++run) {
    const auto start = Clock::now();
    stage();
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  return median(seconds);
}

struct StageResult {
  std::string name;
  double seconds = 0;
  uint64_t rows = 0;
  uint64_t tokens = 0;
  uint64_t bytes = 0;  // the bytes the stage reads: the file, or the rendered text
  bool in_total = true;
};

void print_stage(const StageResult& s) {
  const double mb = static_cast<double>(s.bytes) / 1e6;
  std::printf("  %-28s %9.2f ms %12.0f rows/s %12.0f tokens/s %8.1f MB/s\n", s.name.c_str(),
              s.seconds * 1e3, static_cast<double>(s.rows) / s.seconds,
              static_cast<double>(s.tokens) / s.seconds, mb / s.seconds);
}

int run(const fs::path& data_path, const fs::path& tokenizer_dir) {
  using namespace ll;
  const Tokenizer tokenizer = Tokenizer::load(tokenizer_dir);
  const ChatTemplate chat = ChatTemplate::load(tokenizer_dir);
  const int32_t concat = default_concat_token(Preset::Sql, tokenizer, chat);
  const uint64_t file_bytes = fs::file_size(data_path);

  // One pass first, to have every stage's input (and a warm tokenizer cache, as in training).
  const RecordFile records = read_records(data_path, BadRows::Fail);
  const ConvertedRows converted = convert_records(records, Preset::Sql, BadRows::Fail);
  const RowSplit split = split_rows(records.records.size(), SplitPlan{}, records.path);
  std::vector<uint64_t> rows = split.train;
  rows.insert(rows.end(), split.eval.begin(), split.eval.end());
  const ExampleEncoder encoder(tokenizer, chat, LossMask::AllTokens, concat);
  const ExampleEncoder masked(tokenizer, chat, LossMask::AssistantOnly, concat);
  std::vector<RenderedChat> rendered;
  std::vector<TokenizedExample> documents;
  for (uint64_t row : rows) rendered.push_back(encoder.render(converted.examples[row]));
  for (const RenderedChat& r : rendered) documents.push_back(encoder.encode_rendered(r));
  uint64_t rendered_bytes = 0, tokens = 0;
  for (const RenderedChat& r : rendered) rendered_bytes += r.text.size();
  for (const TokenizedExample& d : documents) tokens += d.ids.size();
  const uint64_t n_rows = records.records.size();
  const auto n_train = static_cast<std::ptrdiff_t>(split.train.size());

  std::vector<StageResult> stages;
  stages.push_back({"read (JSON parse)",
                    time_stage([&] { read_records(data_path, BadRows::Fail); }), n_rows, 0,
                    file_bytes});
  stages.push_back({"preset (sql)",
                    time_stage([&] { convert_records(records, Preset::Sql, BadRows::Fail); }),
                    n_rows, 0, file_bytes});
  stages.push_back({"shuffle/split",
                    time_stage([&] { split_rows(n_rows, SplitPlan{}, records.path); }), n_rows, 0,
                    0});
  stages.push_back({"render (chat template)", time_stage([&] {
                      for (uint64_t row : rows) encoder.render(converted.examples[row]);
                    }),
                    rows.size(), 0, rendered_bytes});
  stages.push_back({"tokenize", time_stage([&] {
                      for (const RenderedChat& r : rendered) encoder.encode_rendered(r);
                    }),
                    rows.size(), tokens, rendered_bytes});
  stages.push_back(
      {"pack (1024)", time_stage([&] {
         pack_documents(std::span(documents).first(static_cast<size_t>(n_train)), kSeqLength);
         pack_documents(std::span(documents).subspan(static_cast<size_t>(n_train)), kSeqLength);
       }),
       rows.size(), tokens, 0});
  StageResult mask{"tokenize (assistant mask)", time_stage([&] {
                     for (const RenderedChat& r : rendered) masked.encode_rendered(r);
                   }),
                   rows.size(), tokens, rendered_bytes};
  mask.in_total = false;
  stages.push_back(mask);
  // What `train` and `data-stats` pay: the whole of prepare_data() with a freshly loaded
  // tokenizer each run (its word cache cold; the load itself not timed).
  std::vector<double> cold;
  for (int run = 0; run < kRuns; ++run) {
    const Tokenizer fresh = Tokenizer::load(tokenizer_dir);
    const auto start = Clock::now();
    prepare_data(data_path, fresh, chat, DataOptions{});
    cold.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  StageResult end_to_end{"prepare_data (cold cache)", median(cold), n_rows, tokens, file_bytes};
  end_to_end.in_total = false;
  stages.push_back(end_to_end);

  StageResult total{"total", 0, n_rows, tokens, file_bytes};
  for (const StageResult& s : stages) {
    if (s.in_total) total.seconds += s.seconds;
  }

  std::printf("data pipeline: %s, %s rows (%s train + %s eval), %s tokens, %s MB, seq %u\n",
              data_path.string().c_str(), std::to_string(n_rows).c_str(),
              std::to_string(split.train.size()).c_str(), std::to_string(split.eval.size()).c_str(),
              std::to_string(tokens).c_str(),
              std::to_string(static_cast<double>(file_bytes) / 1e6).substr(0, 4).c_str(),
              kSeqLength);
  std::printf("  median of %d runs per stage\n", kRuns);
  for (const StageResult& s : stages) print_stage(s);
  print_stage(total);

  nlohmann::json json = {{"bench", "data_pipeline"},
                         {"data", data_path.string()},
                         {"rows", n_rows},
                         {"tokens", tokens},
                         {"file_bytes", file_bytes},
                         {"seq", kSeqLength},
                         {"runs", kRuns},
                         {"total_s", total.seconds},
                         {"rows_per_s", static_cast<double>(n_rows) / total.seconds},
                         {"tokens_per_s", static_cast<double>(tokens) / total.seconds},
                         {"mb_per_s", static_cast<double>(file_bytes) / 1e6 / total.seconds}};
  for (const StageResult& s : stages) json["stages_s"][s.name] = s.seconds;
  std::printf("%s\n", json.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // The repository root is the folder above this file's folder.
  const fs::path root = fs::path(__FILE__).parent_path().parent_path();
  const fs::path data =
      argc > 1 ? fs::path(argv[1]) : root / "../shared/data/sql-create-context/sample-3500.jsonl";
  const fs::path tokenizer =
      argc > 2 ? fs::path(argv[2]) : root / "../shared/data/llama3-tokenizer";
  try {
    return run(data.lexically_normal(), tokenizer.lexically_normal());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_data_pipeline: %s\n", error.what());
    return 1;
  }
}
