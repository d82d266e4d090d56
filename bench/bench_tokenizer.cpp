// Tokenizer throughput: load time of a tokenizer.json, encode MB/s and tokens/s (median of 5
// runs, the first run with a cold word cache reported on its own too), decode MB/s.
// Prints one JSON line.
//
//   ./build/release/bench/bench_tokenizer [TOKENIZER] [CORPUS]
//
// TOKENIZER: a tokenizer.json or its folder (default ../shared/data/llama3-tokenizer).
// CORPUS: a .jsonl file, each row's "question", "context" and "answer" strings joined by
// newlines as one document (any other string fields when those are absent), or any other
// file, encoded as one document (default ../shared/data/sql-create-context/sample-3500.jsonl).
// Default paths are relative to the repository root, where the command should run.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/file.h"
#include "tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

std::vector<std::string> read_documents(const std::filesystem::path& path) {
  std::vector<std::string> documents;
  if (path.extension() != ".jsonl") {
    documents.push_back(ll::read_file(path));
    return documents;
  }
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const nlohmann::json row = nlohmann::json::parse(line);
    std::string document;
    const auto add = [&](const std::string& text) {
      if (!document.empty()) document += '\n';
      document += text;
    };
    for (const char* key : {"question", "context", "answer"}) {
      if (row.contains(key) && row[key].is_string()) add(row[key].get<std::string>());
    }
    if (document.empty()) {
      for (const auto& [key, value] : row.items()) {
        if (value.is_string()) add(value.get<std::string>());
      }
    }
    documents.push_back(std::move(document));
  }
  return documents;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::filesystem::path tokenizer_path =
        argc > 1 ? argv[1] : "../shared/data/llama3-tokenizer";
    const std::filesystem::path corpus_path =
        argc > 2 ? argv[2] : "../shared/data/sql-create-context/sample-3500.jsonl";

    const auto load_start = Clock::now();
    const ll::Tokenizer tokenizer = ll::Tokenizer::load(tokenizer_path);
    const double load_s = seconds_since(load_start);

    const std::vector<std::string> documents = read_documents(corpus_path);
    size_t bytes = 0;
    for (const std::string& document : documents) bytes += document.size();
    const double megabytes = static_cast<double>(bytes) / 1e6;

    constexpr int kRuns = 5;
    std::vector<double> encode_s;
    std::vector<std::vector<int32_t>> encoded(documents.size());
    size_t tokens = 0;
    for (int run = 0; run < kRuns; ++run) {
      const auto start = Clock::now();
      tokens = 0;
      for (size_t i = 0; i < documents.size(); ++i) {
        encoded[i] = tokenizer.encode(documents[i], ll::AddSpecialTokens::No);
        tokens += encoded[i].size();
      }
      encode_s.push_back(seconds_since(start));
    }
    std::vector<double> offsets_s;
    for (int run = 0; run < kRuns; ++run) {
      const auto start = Clock::now();
      for (const std::string& document : documents) {
        (void)tokenizer.encode_with_offsets(document, ll::AddSpecialTokens::No);
      }
      offsets_s.push_back(seconds_since(start));
    }
    std::vector<double> decode_s;
    size_t mismatches = 0;
    for (int run = 0; run < kRuns; ++run) {
      const auto start = Clock::now();
      for (size_t i = 0; i < documents.size(); ++i) {
        const std::string text = tokenizer.decode(encoded[i], ll::DecodeSpecial::Keep);
        if (run == 0 && text != documents[i]) ++mismatches;
      }
      decode_s.push_back(seconds_since(start));
    }

    const double encode_median = median(encode_s);
    const nlohmann::json report = {
        {"bench", "tokenizer"},
        {"tokenizer", tokenizer_path.string()},
        {"corpus", corpus_path.string()},
        {"documents", documents.size()},
        {"bytes", bytes},
        {"tokens", tokens},
        {"load_s", load_s},
        {"encode_mb_s", megabytes / encode_median},
        {"encode_cold_mb_s", megabytes / encode_s.front()},
        {"encode_tokens_s", static_cast<double>(tokens) / encode_median},
        {"encode_with_offsets_mb_s", megabytes / median(offsets_s)},
        {"decode_mb_s", megabytes / median(decode_s)},
        {"round_trip_mismatches", mismatches},
        {"runs", kRuns},
    };
    std::printf("%s\n", report.dump().c_str());
    return mismatches == 0 ? 0 : 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", error.what());
    return 1;
  }
}
