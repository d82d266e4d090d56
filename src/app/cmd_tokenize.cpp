// `llama-lora tokenize`: encode a text with a Hugging Face tokenizer.json and print the ids,
// the pieces, or both as JSON, to check what the model will see (e.g. how a chat turn splits,
// whether BOS is added).
//   llama-lora tokenize --tokenizer DIR --text "Hello world"            -> 9906 1917
//   llama-lora tokenize --tokenizer DIR --text "Hello world" --format pieces
//                                                                       -> "Hello" " world"
//   llama-lora tokenize --tokenizer DIR --file notes.txt --format json --add_special_tokens
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "app/cli.h"
#include "core/error.h"
#include "core/file.h"
#include "tokenizer/tokenizer.h"

namespace ll {

namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::string text;
  std::string file;
  std::string format = "ids";
  bool add_special_tokens = false;
};

// What one token stands for, readable: its decoded text as a JSON string when that is valid
// UTF-8, else its bytes as <0xNN> (a token that holds part of a character, e.g. of an emoji).
std::string show_piece(const Tokenizer& tokenizer, int32_t id) {
  const int32_t ids[] = {id};
  const std::string text = tokenizer.decode(ids, DecodeSpecial::Keep);
  if (text.find("\xEF\xBF\xBD") == std::string::npos) return nlohmann::json(text).dump();
  // decode() replaced invalid bytes; show the token's own bytes instead.
  std::string shown = "\"";
  for (unsigned char c : tokenizer.decode_bytes(ids, DecodeSpecial::Keep)) {
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "<0x%02X>", c);
    shown += buffer;
  }
  return shown + "\"";
}

void run_tokenize(const TokenizeOptions& options) {
  const Tokenizer tokenizer = Tokenizer::load(options.tokenizer);
  const std::string text = options.file.empty() ? options.text : read_file(options.file);
  const AddSpecialTokens add =
      options.add_special_tokens ? AddSpecialTokens::Yes : AddSpecialTokens::No;
  const Encoding encoding = tokenizer.encode_with_offsets(text, add);

  std::string line;
  if (options.format == "ids") {
    for (size_t i = 0; i < encoding.ids.size(); ++i) {
      if (i > 0) line += ' ';
      line += std::to_string(encoding.ids[i]);
    }
  } else if (options.format == "pieces") {
    for (size_t i = 0; i < encoding.ids.size(); ++i) {
      if (i > 0) line += ' ';
      line += show_piece(tokenizer, encoding.ids[i]);
    }
  } else {  // json
    nlohmann::json tokens = nlohmann::json::array();
    nlohmann::json offsets = nlohmann::json::array();
    for (size_t i = 0; i < encoding.ids.size(); ++i) {
      tokens.push_back(tokenizer.id_to_token(encoding.ids[i]));
      offsets.push_back({encoding.offsets[i].first, encoding.offsets[i].second});
    }
    const nlohmann::json out = {{"ids", encoding.ids}, {"tokens", tokens}, {"offsets", offsets}};
    line = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  auto* cmd = app.add_subcommand(
      "tokenize", "Encode a text with a tokenizer.json and print the token ids or pieces");
  cmd->add_option("--tokenizer", options->tokenizer,
                  "tokenizer.json, or a folder holding one (e.g. a model folder)")
      ->required();
  auto* text = cmd->add_option("--text", options->text, "the text to encode");
  auto* file = cmd->add_option("--file", options->file, "encode this file's bytes instead");
  text->excludes(file);
  file->excludes(text);
  cmd->add_flag("--add_special_tokens", options->add_special_tokens,
                "apply the post-processor, as transformers does by default (Llama-3: BOS)");
  cmd->add_option("--format", options->format,
                  "ids: one line of ids; pieces: the text of each token, JSON-quoted "
                  "(<0xNN> for bytes of a split character); json: {\"ids\", \"tokens\" "
                  "(vocab form), \"offsets\" (byte ranges)}")
      ->check(CLI::IsMember({"ids", "pieces", "json"}))
      ->capture_default_str();
  cmd->callback([options, text, file] {
    if (text->count() == 0 && file->count() == 0) fail("tokenize", "give --text or --file");
    run_tokenize(*options);
  });
}

}  // namespace ll
