// SQL quality metrics for `llama-lora eval --preset sql`: does a predicted query equal the
// gold one (exact match after normalisation), is it a valid read-only query against the
// row's schema, and does it return the same rows as the gold query on generated data
// (execution match)?
//
// The schema comes from the row's `context` (CREATE TABLE statements, as in
// sql-create-context; a table the context defines twice is merged, see sql_text.h).
// Everything runs in a private in-memory SQLite database per row; a predicted query can only
// read (an authorizer allows nothing but SELECT, no ATTACH, PRAGMA or writes), runs under a
// step budget and a row limit, and its errors are results, never exceptions. A context that
// does not build is a SchemaError result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

namespace ll {

// Canonical text of a query, for exact match:
// - tokens re-joined with single spaces (none inside "count(*)", "t1.name", before ',');
// - keywords and identifiers ASCII-lower-cased, outside string literals only: 'Jazz' and
//   'jazz' are different values under SQLite's default BINARY collation, so a query that
//   folds a literal's case asks a different question and must not count as exact;
//   "double-quoted" tokens are kept verbatim too (sql-create-context uses them as strings);
// - comments removed, trailing semicolons dropped.
std::string normalize_sql(std::string_view sql);
bool sql_exact_match(std::string_view predicted, std::string_view gold);

enum class SqlOutcome {
  Ok,               // valid (or, for execution match: same results on every database)
  Mismatch,         // both queries ran, results differ
  PredictionError,  // the predicted query is not a valid read-only single statement, or failed
  GoldError,        // the gold query fails against its own schema: the row cannot be scored
  SchemaError,      // the context does not build a schema
};
const char* sql_outcome_name(SqlOutcome outcome);

struct SqlVerdict {
  SqlOutcome outcome = SqlOutcome::PredictionError;
  std::string message;  // why, when not Ok
  bool ok() const { return outcome == SqlOutcome::Ok; }
};

struct SqlExecOptions {
  size_t rows_per_table = 6;
  // Databases filled per row; a match must hold on all. Each column draws from the literals
  // the queries compare it with, their neighbours (n - 1, n + 1, other case) and generic
  // values. Fill 0 puts the values in order (row 0 holds every column's own literal, so
  // conjunctive filters find a row), fill 1 repeats three values on 3, 2 and 1 rows in a
  // pattern that turns with the column (COUNT tells values and columns apart, groups have
  // several sizes), later fills draw at random, one value in eight NULL.
  size_t fills = 4;
  size_t max_result_rows = 10000;    // a query returning more is a failure
  uint64_t max_vm_steps = 20000000;  // SQLite VM instructions per query (~0.1 s), then abort
};

// `predicted` prepares against the schema built from `context`, is one statement and reads
// only. SchemaError when the context does not build.
SqlVerdict sql_is_valid(std::string_view predicted, std::string_view context);

// Runs gold and predicted on databases filled with rows generated from `seed` and the
// literals of both queries; compares results as multisets of rows, or as lists when the gold
// query has a top-level ORDER BY. Numbers are equal when |a - b| <= 1e-6 * max(1, |a|, |b|)
// (integer 3 equals real 3.0); text and blobs byte for byte; NULL equals NULL; a number never
// equals text.
SqlVerdict sql_execution_match(std::string_view predicted, std::string_view gold,
                               std::string_view context, uint64_t seed,
                               const SqlExecOptions& options = {});

// One evaluated row.
struct SqlEvalResult {
  bool exact = false;
  bool valid = false;
  bool exec_match = false;
  bool schema_error = false;
  bool gold_error = false;
  std::string message;  // why valid or exec_match is false; empty otherwise
};

// Everything for one row, building the database once.
SqlEvalResult evaluate_sql_row(std::string_view predicted, std::string_view gold,
                               std::string_view context, uint64_t seed,
                               const SqlExecOptions& options = {});

// Counts over rows. Rates are over all rows: a row whose schema or gold query is broken
// counts as neither valid nor matched for every model alike, and the counts of such rows
// say how far from 100% the ceiling is.
struct SqlEvalSummary {
  size_t rows = 0;
  size_t exact = 0;
  size_t valid = 0;
  size_t exec_match = 0;
  size_t schema_errors = 0;
  size_t gold_errors = 0;

  void add(const SqlEvalResult& result);
  double exact_rate() const { return rate(exact); }
  double valid_rate() const { return rate(valid); }
  double exec_match_rate() const { return rate(exec_match); }

 private:
  double rate(size_t count) const { return rows ? double(count) / double(rows) : 0.0; }
};

nlohmann::json sql_eval_result_json(const SqlEvalResult& result);
nlohmann::json sql_eval_summary_json(const SqlEvalSummary& summary);
// A small aligned table: metric, count, rate.
std::string format_sql_eval_summary(const SqlEvalSummary& summary);

}  // namespace ll
