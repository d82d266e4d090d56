// The built-in training text of the self-made tokenizer (`llama-lora init` without
// --tokenizer): generated in code, deterministically, so no download is ever needed.
// It looks like the seed's task as the chat template renders it: the text-to-SQL system
// prompt, CREATE TABLE schemas (VARCHAR / INTEGER / REAL columns, Spider- and WikiSQL-style
// table and column names), English questions and their SQL answers (SELECT, COUNT, WHERE,
// JOIN, GROUP BY, ...), plus plain English sentences and numbers. Merges learned from it
// keep those sequences short, so a tiny model can learn a SQL task quickly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace ll {

// About `target_bytes` of text (it stops after the record that reaches it).
std::string make_sql_corpus(size_t target_bytes, uint64_t seed);

inline constexpr size_t kSqlCorpusDefaultBytes = 400 * 1024;
inline constexpr uint64_t kSqlCorpusDefaultSeed = 23;  // the seed's dataset shuffle seed

// What `llama-lora init` uses when no tokenizer is given: the Llama-3-style BPE
// (tokenizer/bpe_trainer.h) trained on the default corpus, `vocab_size` tokens in all.
// Returns the tokenizer.json.
nlohmann::json train_builtin_tokenizer(int32_t vocab_size);

}  // namespace ll
