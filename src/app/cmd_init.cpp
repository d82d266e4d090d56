// `llama-lora init --preset NAME -o DIR`: writes a Hugging Face model folder with random
// weights of a known shape (see formats/model_presets.h), so that training, merging and the
// benchmarks can run without downloading a model:
//   config.json, generation_config.json       the preset's config; bos/eos ids from the tokenizer
//   model.safetensors or shards + index       bf16, initialised like transformers and split
//                                             at 5 GB like save_pretrained (--max-shard-size;
//                                             random_weights.h)
//   tokenizer.json, tokenizer_config.json,    copied from --tokenizer DIR, or a byte-level BPE
//   special_tokens_map.json                   trained here on a built-in SQL corpus (bpe_trainer.h)
// Everything is written into a staged folder that is renamed into place at the end, so a
// failure (or Ctrl-C) never leaves a half-written model folder behind.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "app/cli.h"
#include "core/error.h"
#include "core/file.h"
#include "core/text.h"
#include "data/sql_corpus.h"
#include "formats/input_checks.h"
#include "formats/llama_config.h"
#include "formats/model_presets.h"
#include "formats/random_weights.h"
#include "formats/safetensors.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/tokenizer.h"

namespace ll {
namespace {

using nlohmann::json;

constexpr std::string_view kOrigin = "init";

struct InitOptions {
  std::string preset;
  std::string output;
  std::string tokenizer;        // empty: train the built-in one
  int32_t tokenizer_vocab = 0;  // built-in tokenizer size; 0: the preset's
  uint64_t seed = 0;
  std::string max_shard_size = "5GB";
  bool overwrite = false;
  int64_t kv_heads = 0;  // 0: the preset's num_key_value_heads
};

// The files of a tokenizer folder that a model folder carries (tokenizer.json required).
constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json",
                                           "special_tokens_map.json"};

struct TokenizerInfo {
  Tokenizer tokenizer;
  json config;  // tokenizer_config.json, or null when there is none
  std::string description;
};

fs::path tokenizer_source_dir(const std::string& given) {
  fs::path dir = given;
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) dir = dir.parent_path();  // a path to tokenizer.json
  if (!fs::is_regular_file(dir / "tokenizer.json", ec)) {
    fail(kOrigin, given + ": no tokenizer.json there (--tokenizer takes a folder holding one)");
  }
  return dir;
}

json read_json_if_present(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return nullptr;
  return parse_json_text(read_file(path), kOrigin, path.string());
}

TokenizerInfo copy_tokenizer(const fs::path& source, const fs::path& dir) {
  for (const char* name : kTokenizerFiles) {
    std::error_code ec;
    if (!fs::is_regular_file(source / name, ec)) continue;
    fs::copy_file(source / name, dir / name, fs::copy_options::overwrite_existing, ec);
    if (ec) fail(kOrigin, (source / name).string() + ": cannot copy: " + ec.message());
  }
  TokenizerInfo info{Tokenizer::load(dir / "tokenizer.json"),
                     read_json_if_present(dir / "tokenizer_config.json"),
                     "copied from " + source.string()};
  return info;
}

TokenizerInfo write_builtin_tokenizer(int32_t vocab_size, int64_t model_max_length,
                                      const fs::path& dir) {
  const json tokenizer_json = train_builtin_tokenizer(vocab_size);
  json config = llama3_tokenizer_config(tokenizer_json, model_max_length);
  write_file_atomic(dir / "tokenizer.json", tokenizer_json.dump(2) + "\n");
  write_file_atomic(dir / "tokenizer_config.json", config.dump(2) + "\n");
  write_file_atomic(dir / "special_tokens_map.json", llama3_special_tokens_map().dump(2) + "\n");
  Tokenizer tokenizer = Tokenizer::from_json(tokenizer_json, (dir / "tokenizer.json").string());
  const std::string description = "built-in byte-level BPE, " +
                                  format_count(static_cast<uint64_t>(tokenizer.vocab_size())) +
                                  " tokens";
  return {std::move(tokenizer), std::move(config), description};
}

// The id of a token named in tokenizer_config.json ("eos_token": "<|eot_id|>" or
// {"content": "<|eot_id|>", ...}), if the tokenizer knows it.
std::optional<int64_t> config_token_id(const TokenizerInfo& info, const char* field) {
  if (!info.config.is_object() || !info.config.contains(field)) return std::nullopt;
  const json& value = info.config[field];
  std::string content;
  if (value.is_string()) {
    content = value.get<std::string>();
  } else if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    content = value["content"].get<std::string>();
  } else {
    return std::nullopt;
  }
  if (const std::optional<int32_t> id = info.tokenizer.token_to_id(content)) return *id;
  return std::nullopt;
}

std::optional<int64_t> token_id(const Tokenizer& tokenizer, std::string_view token) {
  if (const std::optional<int32_t> id = tokenizer.token_to_id(token)) return *id;
  return std::nullopt;
}

struct SpecialIds {
  std::optional<int64_t> bos;
  std::optional<int64_t> eos;           // config.json: the base model's end of text
  std::vector<int64_t> generation_eos;  // generation_config.json: also the end of a turn
};

// Llama-3 style first (bos <|begin_of_text|>, eos <|end_of_text|>, generation also stops at
// <|eot_id|>), else whatever tokenizer_config.json names.
SpecialIds find_special_ids(const TokenizerInfo& info) {
  SpecialIds ids;
  ids.bos = token_id(info.tokenizer, "<|begin_of_text|>");
  if (!ids.bos) ids.bos = config_token_id(info, "bos_token");
  if (!ids.bos) {
    if (const std::optional<int32_t> bos = info.tokenizer.bos_id()) ids.bos = *bos;
  }
  ids.eos = token_id(info.tokenizer, "<|end_of_text|>");
  if (!ids.eos) ids.eos = config_token_id(info, "eos_token");
  for (const std::optional<int64_t> id :
       {ids.eos, config_token_id(info, "eos_token"), token_id(info.tokenizer, "<|eot_id|>")}) {
    if (id && std::find(ids.generation_eos.begin(), ids.generation_eos.end(), *id) ==
                  ids.generation_eos.end()) {
      ids.generation_eos.push_back(*id);
    }
  }
  return ids;
}

json generation_config_json(const SpecialIds& ids) {
  json out = json::object();
  if (ids.bos) out["bos_token_id"] = *ids.bos;
  if (ids.generation_eos.size() == 1) {
    out["eos_token_id"] = ids.generation_eos[0];
  } else if (!ids.generation_eos.empty()) {
    out["eos_token_id"] = ids.generation_eos;
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void run_init(const InitOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const ModelPreset& preset = find_model_preset(options.preset);
  const uint64_t max_shard_bytes = parse_max_shard_size(options.max_shard_size, "--max-shard-size");
  std::optional<fs::path> tokenizer_dir;
  if (!options.tokenizer.empty()) {
    check(options.tokenizer_vocab == 0, kOrigin,
          "--tokenizer-vocab sets the size of the built-in tokenizer; it cannot be combined "
          "with --tokenizer");
    tokenizer_dir = tokenizer_source_dir(options.tokenizer);
  }

  StagedDir staged(options.output,
                   options.overwrite ? StagedDir::Existing::Replace : StagedDir::Existing::Refuse);
  const fs::path& dir = staged.path();

  const int32_t builtin_vocab =
      options.tokenizer_vocab > 0 ? options.tokenizer_vocab : preset.builtin_tokenizer_vocab;
  TokenizerInfo tokenizer =
      tokenizer_dir
          ? copy_tokenizer(*tokenizer_dir, dir)
          : write_builtin_tokenizer(builtin_vocab, preset.config.max_position_embeddings, dir);
  if (!tokenizer_dir && tokenizer.tokenizer.vocab_size() < builtin_vocab) {
    std::fprintf(stderr,
                 "init: note: the built-in corpus has no more pairs seen twice; the tokenizer "
                 "has %d tokens, not %d\n",
                 tokenizer.tokenizer.vocab_size(), builtin_vocab);
  }

  LlamaConfig config = preset_config_for_tokenizer(preset, tokenizer.tokenizer.vocab_size());
  if (options.kv_heads > 0) {
    check(config.num_attention_heads % options.kv_heads == 0, kOrigin,
          "--num-key-value-heads " + std::to_string(options.kv_heads) + " does not divide the " +
              preset.name + " preset's " + std::to_string(config.num_attention_heads) +
              " attention heads");
    config.num_key_value_heads = options.kv_heads;
  }
  const SpecialIds ids = find_special_ids(tokenizer);
  config.bos_token_id = ids.bos;
  config.eos_token_ids.clear();
  if (ids.eos) config.eos_token_ids.push_back(*ids.eos);
  write_file_atomic(dir / "config.json", llama_config_to_json(config).dump(2) + "\n");
  write_file_atomic(dir / "generation_config.json", generation_config_json(ids).dump(2) + "\n");

  RandomWeightsOptions weights_options;
  weights_options.seed = options.seed;
  weights_options.max_shard_bytes = max_shard_bytes;
  weights_options.on_file_written = [](const std::string& file, uint64_t done, uint64_t total) {
    if (file != "model.safetensors") {  // only worth a line when the model spans several files
      std::fprintf(stderr, "init: wrote %s (%s of %s)\n", file.c_str(), format_bytes(done).c_str(),
                   format_bytes(total).c_str());
    }
  };
  const WrittenWeights weights = write_random_llama_weights(dir, config, weights_options);
  staged.commit();

  const size_t shards = weights.files.size() == 1 ? 1 : weights.files.size() - 1;  // - index
  std::printf(
      "init: wrote %s: preset %s, %s parameters, %s bf16 in %zu weight file%s, vocab %s "
      "(tokenizer %s), seed %llu, %.1f s\n",
      staged.final_path().string().c_str(), preset.name.c_str(),
      format_count(static_cast<uint64_t>(weights.parameters)).c_str(),
      format_bytes(weights.tensor_bytes).c_str(), shards, shards == 1 ? "" : "s",
      format_count(static_cast<uint64_t>(config.vocab_size)).c_str(), tokenizer.description.c_str(),
      static_cast<unsigned long long>(options.seed), seconds_since(start));
}

}  // namespace

void add_init_command(CLI::App& app) {
  auto options = std::make_shared<InitOptions>();
  std::vector<std::string> names;
  std::string preset_help = "model shape:";
  for (const ModelPreset& preset : model_presets()) {
    names.push_back(preset.name);
    preset_help += "\n  " + preset.name + ": " + preset.summary;
  }
  auto* cmd = app.add_subcommand(
      "init", "Write a Hugging Face model folder with random bf16 weights of a known shape");
  cmd->add_option("--preset", options->preset, preset_help)
      ->required()
      ->check(CLI::IsMember(names));
  cmd->add_option("-o,--output", options->output, "model folder to create")->required();
  cmd->add_option("--tokenizer", options->tokenizer,
                  "folder with tokenizer.json (+ tokenizer_config.json, special_tokens_map.json) "
                  "to copy; default: train a small byte-level BPE on a built-in SQL corpus");
  cmd->add_option("--tokenizer-vocab", options->tokenizer_vocab,
                  "size of the built-in tokenizer, special tokens included (default 1024; its "
                  "corpus supports up to about 1,900)")
      ->check(CLI::Range(256 + kBuiltinSpecialTokenCount, 1 << 20));
  cmd->add_option("--seed", options->seed, "seed of the random weights (same seed, same bytes)")
      ->capture_default_str();
  cmd->add_option("--max-shard-size", options->max_shard_size,
                  "largest weight file, as transformers' save_pretrained max_shard_size")
      ->capture_default_str();
  cmd->add_flag("--overwrite", options->overwrite, "replace the output folder if it exists");
  cmd->add_option("--num-key-value-heads", options->kv_heads,
                  "override the preset's key/value head count (e.g. tiny with 4: multi-head "
                  "attention, so that tensor parallel size 4 divides it)")
      ->check(CLI::PositiveNumber);
  cmd->callback([options] { run_init(*options); });
}

}  // namespace ll
