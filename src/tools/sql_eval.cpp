// See sql_eval.h. Top to bottom: comparing values, the values generated into the tables,
// the sandboxed SQLite database, comparing results, and the public functions and counts.
// Reading SQL text (tokens, the schema, literals) is in sql_text.h.
#include "tools/sql_eval.h"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <vector>

#include "core/error.h"
#include "tools/sql_text.h"

namespace ll {
namespace {

using namespace sql_text;

constexpr std::string_view kOrigin = "sql-eval";

// ---- values -------------------------------------------------------------------------------

// A total order for sorting rows: NULL < numbers < text < blobs (SQLite's order).
int compare_values(const Value& a, const Value& b) {
  const auto rank = [](const Value& v) {
    return v.kind == Value::Kind::Null ? 0 : v.numeric() ? 1 : v.kind == Value::Kind::Text ? 2 : 3;
  };
  if (rank(a) != rank(b)) return rank(a) < rank(b) ? -1 : 1;
  if (a.kind == Value::Kind::Integer && b.kind == Value::Kind::Integer) {
    return a.integer < b.integer ? -1 : a.integer > b.integer ? 1 : 0;
  }
  if (a.numeric())
    return a.as_double() < b.as_double() ? -1 : a.as_double() > b.as_double() ? 1 : 0;
  return a.bytes.compare(b.bytes) < 0 ? -1 : a.bytes == b.bytes ? 0 : 1;
}

// Equality for results: numbers within 1e-6 relative (absolute below 1), so AVG(x) and
// SUM(x) / COUNT(x), or 3 and 3.0, match; everything else exactly.
bool values_equal(const Value& a, const Value& b) {
  if (a.numeric() && b.numeric()) {
    if (a.kind == Value::Kind::Integer && b.kind == Value::Kind::Integer) {
      return a.integer == b.integer;
    }
    const double x = a.as_double(), y = b.as_double();
    return x == y || std::fabs(x - y) <= 1e-6 * std::max({1.0, std::fabs(x), std::fabs(y)});
  }
  return a.kind == b.kind && a.bytes == b.bytes;
}

// ---- generated values --------------------------------------------------------------

// Values near a literal that tell similar queries apart: n - 1 and n + 1 ("> n" vs ">= n"),
// the other case of the first letter ('=' vs LIKE), a longer string ('=' vs LIKE 'x%'), and
// for a LIKE pattern a string it matches.
std::vector<Value> with_neighbours(const Value& v) {
  if (v.kind == Value::Kind::Integer) {
    std::vector<Value> out = {v};
    if (v.integer > INT64_MIN) out.push_back(Value::of_integer(v.integer - 1));
    if (v.integer < INT64_MAX) out.push_back(Value::of_integer(v.integer + 1));
    return out;
  }
  if (v.kind == Value::Kind::Real)
    return {v, Value::of_real(v.real - 1), Value::of_real(v.real + 1)};
  std::vector<Value> out;
  if (v.bytes.find_first_of("%_") != std::string::npos) {
    std::string match;
    for (char c : v.bytes) {
      if (c != '%') match.push_back(c == '_' ? 'x' : c);
    }
    out.push_back(Value::of_text(match));
  }
  out.push_back(v);
  std::string other_case = v.bytes;
  for (char& c : other_case) {
    if (static_cast<unsigned>((static_cast<unsigned char>(c) | 32) - 'a') < 26u) {
      c = static_cast<char>(c ^ 32);
      break;
    }
  }
  if (other_case != v.bytes) out.push_back(Value::of_text(other_case));
  out.push_back(Value::of_text(v.bytes + " x"));
  return out;
}

struct ValuePool {
  std::vector<Value> values;
  size_t from_literals = 0;  // the first values, those that came from the queries' literals
};

// The values a column draws from: the literals compared with it, their neighbours, the
// literals compared with no known column and theirs, then generic values; converted to the
// column's affinity, at most kMaxPool.
ValuePool column_pool(const SchemaColumn& column, const std::vector<Literal>& literals) {
  constexpr size_t kMaxLiteralValues = 9, kMaxPool = 14;
  std::vector<Value> pool;
  const bool numeric_column =
      column.affinity != Affinity::Text && column.affinity != Affinity::Blob;
  const auto add = [&](const Value& v) {
    std::optional<Value> converted = v;
    if (numeric_column && !v.numeric()) converted = parse_number(v.bytes, false);
    if (column.affinity == Affinity::Text && v.numeric()) converted = Value::of_text(v.as_text());
    if (!converted || pool.size() >= kMaxPool) return;
    const auto same = [&](const Value& p) {
      return p.kind == converted->kind && compare_values(p, *converted) == 0;
    };
    if (std::none_of(pool.begin(), pool.end(), same)) pool.push_back(std::move(*converted));
  };
  const std::string name = lower(column.name);
  for (const bool linked : {true, false}) {
    for (const bool neighbours : {false, true}) {  // the literals first, then their neighbours
      for (const Literal& literal : literals) {
        if (linked ? literal.column != name : !literal.column.empty()) continue;
        const std::vector<Value> values = with_neighbours(literal.value);
        for (size_t i = neighbours ? 1 : 0; i < (neighbours ? values.size() : 1); ++i) {
          if (pool.size() < kMaxLiteralValues) add(values[i]);
        }
      }
    }
  }
  const size_t from_literals = pool.size();
  for (int64_t v : {1, 2, 3, 10, 0, 100}) add(Value::of_integer(v));
  if (!numeric_column) {
    for (const char* v : {"alpha", "beta", "Gamma", "delta"}) add(Value::of_text(v));
  }
  return {std::move(pool), from_literals};
}

// ---- the database -------------------------------------------------------------------------

struct DbClose {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalize {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbHandle = std::unique_ptr<sqlite3, DbClose>;
using StmtHandle = std::unique_ptr<sqlite3_stmt, StmtFinalize>;

using Row = std::vector<Value>;

class EvalDatabase {
 public:
  // Throws ll::Error when the context does not give a schema.
  explicit EvalDatabase(std::string_view context) : tables_(parse_schema(context)) {
    sqlite3* raw = nullptr;
    const int rc =
        sqlite3_open_v2(":memory:", &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    db_.reset(raw);  // owned even when the open failed
    check(rc, "opening an in-memory database");
    // sql-create-context writes strings in double quotes; SQLite reads them as strings when
    // no column has that name, unless a build turned that off.
    check(sqlite3_db_config(db_.get(), SQLITE_DBCONFIG_DQS_DML, 1, nullptr), "enabling DQS");
    check(sqlite3_db_config(db_.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr), "defensive mode");
    sqlite3_limit(db_.get(), SQLITE_LIMIT_ATTACHED, 0);      // returns the old limit, cannot fail
    sqlite3_limit(db_.get(), SQLITE_LIMIT_LENGTH, 1 << 20);  // no giant strings or blobs
    check(sqlite3_set_authorizer(db_.get(), &EvalDatabase::authorize, this), "authorizer");
    sqlite3_progress_handler(db_.get(), kProgressInterval, &EvalDatabase::on_progress, this);
    for (const SchemaTable& table : tables_) {
      const std::string sql = create_table_sql(table);
      execute(sql, std::string("context: ") + sql);
    }
  }

  // Registered with SQLite as `this`: neither copied nor moved.
  EvalDatabase(const EvalDatabase&) = delete;
  EvalDatabase& operator=(const EvalDatabase&) = delete;

  // Prepares `sql` as one read-only query; on failure returns null and says why in `error`.
  StmtHandle prepare_query(std::string_view sql, std::string& error) {
    if (sql.find('\0') != std::string_view::npos) {
      error = "contains a NUL byte";
      return nullptr;
    }
    const std::string text(sql);
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    denied_.clear();
    query_mode_ = true;
    const int rc = sqlite3_prepare_v2(db_.get(), text.c_str(), int(text.size()), &raw, &tail);
    query_mode_ = false;
    StmtHandle stmt(raw);
    if (rc != SQLITE_OK) {
      error = denied_.empty()
                  ? std::string("does not prepare: ") + sqlite3_errmsg(db_.get())
                  : std::string("is not a read-only query (") + denied_ + " is not allowed)";
      return nullptr;
    }
    if (!stmt) {
      error = "is empty";
      return nullptr;
    }
    for (const Token& t : tokenize(std::string_view(tail, text.c_str() + text.size() - tail))) {
      if (!is_punct(t, ";")) {
        error = std::string("has a second statement: '") + std::string(tail).substr(0, 60) + "'";
        return nullptr;
      }
    }
    if (!sqlite3_stmt_readonly(stmt.get())) {
      error = "is not read-only";
      return nullptr;
    }
    if (sqlite3_column_count(stmt.get()) == 0) {
      error = "returns no columns";
      return nullptr;
    }
    return stmt;
  }

  // Replaces every table's rows with generated ones (see SqlExecOptions::fills).
  void fill(const std::vector<Literal>& literals, size_t fill_index, uint64_t seed,
            size_t rows_per_table) {
    std::mt19937_64 rng(seed ^ (0x9E3779B97F4A7C15ull * (fill_index + 1)));
    size_t ordinal = 0;  // of the column over all tables, for fill 1's pattern
    for (const SchemaTable& table : tables_) {
      execute(std::string("DELETE FROM ") + quote_name(table.name),
              std::string("emptying ") + table.name);
      std::string sql = std::string("INSERT INTO ") + quote_name(table.name) + " VALUES (";
      for (size_t c = 0; c < table.columns.size(); ++c) sql += c ? ", ?" : "?";
      StmtHandle insert = prepare(sql + ")", std::string("inserting into ") + table.name);
      std::vector<ValuePool> pools;
      for (const SchemaColumn& column : table.columns) {
        pools.push_back(column_pool(column, literals));
      }
      for (size_t r = 0; r < rows_per_table; ++r) {
        for (size_t c = 0; c < table.columns.size(); ++c) {
          const std::vector<Value>& pool = pools[c].values;
          const size_t k = ordinal + c, size = pool.size();
          Value null_value;
          const Value* v = &null_value;
          if (fill_index == 0) {  // in order: row 0 holds every column's first literal
            v = &pool[r % size];
          } else if (fill_index == 1) {
            // Staircase: the first three values on 3, 2 and 1 rows; which value gets which
            // count, and which rows, turn with the column. COUNT then tells "= 18" from
            // "= 19", a filter on the wrong column counts differently, groups have several
            // sizes, and the rows of one value in a column meet several values in another
            // (so INTERSECT of two filters can be non-empty).
            const size_t turned = (r + k) % 6, step = turned < 3 ? 0 : turned < 5 ? 1 : 2;
            v = &pool[(step + k) % std::min(size, size_t(3))];
          } else if (rng() % 8 != 0) {  // else NULL: one value in eight
            // Half the draws from the literal values, so filters still find rows.
            const size_t span = rng() % 2 && pools[c].from_literals ? pools[c].from_literals : size;
            v = &pool[rng() % span];
          }
          bind(insert.get(), int(c + 1), *v, table.name);
        }
        step_to_done(insert.get(), std::string("inserting into ") + table.name);
        check(sqlite3_reset(insert.get()), "resetting an insert");
      }
      ordinal += table.columns.size();
    }
  }

  // Runs a prepared query from the start; false with `error` on failure or over the limits.
  bool run(sqlite3_stmt* stmt, const SqlExecOptions& options, std::vector<Row>& rows,
           std::string& error) {
    sqlite3_reset(stmt);  // returns the previous run's error, already reported then
    rows.clear();
    progress_left_ = options.max_vm_steps / kProgressInterval + 1;
    const int columns = sqlite3_column_count(stmt);
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) {
        error = progress_left_ == 0
                    ? std::string("stopped after ") + std::to_string(options.max_vm_steps) +
                          " SQLite steps (runaway query)"
                    : std::string("failed: ") + sqlite3_errmsg(db_.get());
        progress_left_ = kUnlimited;
        return false;
      }
      if (rows.size() == options.max_result_rows) {
        error =
            std::string("returns more than ") + std::to_string(options.max_result_rows) + " rows";
        progress_left_ = kUnlimited;
        return false;
      }
      Row& row = rows.emplace_back(size_t(columns));
      for (int c = 0; c < columns; ++c) row[size_t(c)] = read_column(stmt, c);
    }
    progress_left_ = kUnlimited;
    return true;
  }

 private:
  static constexpr int kProgressInterval = 1000;  // VM instructions between progress calls
  static constexpr uint64_t kUnlimited = ~uint64_t(0);

  void check(int rc, std::string_view what) const {
    if (rc != SQLITE_OK) {
      fail(kOrigin,
           std::string(what) + ": " + (db_ ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc)));
    }
  }
  StmtHandle prepare(const std::string& sql, std::string_view what) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v2(db_.get(), sql.c_str(), int(sql.size()), &raw, nullptr);
    StmtHandle stmt(raw);
    check(rc, what);
    return stmt;
  }
  void step_to_done(sqlite3_stmt* stmt, std::string_view what) {
    int rc = SQLITE_ROW;
    while (rc == SQLITE_ROW) rc = sqlite3_step(stmt);
    check(rc == SQLITE_DONE ? SQLITE_OK : rc, what);
  }
  void execute(const std::string& sql, std::string_view what) {
    StmtHandle stmt = prepare(sql, what);
    step_to_done(stmt.get(), what);
  }
  void bind(sqlite3_stmt* stmt, int index, const Value& v, std::string_view table) {
    int rc = SQLITE_OK;
    switch (v.kind) {
      case Value::Kind::Null:
        rc = sqlite3_bind_null(stmt, index);
        break;
      case Value::Kind::Integer:
        rc = sqlite3_bind_int64(stmt, index, v.integer);
        break;
      case Value::Kind::Real:
        rc = sqlite3_bind_double(stmt, index, v.real);
        break;
      case Value::Kind::Text:
      case Value::Kind::Blob:
        rc = sqlite3_bind_text(stmt, index, v.bytes.data(), int(v.bytes.size()), SQLITE_TRANSIENT);
        break;
    }
    check(rc, std::string("binding a value for ") + std::string(table));
  }
  static Value read_column(sqlite3_stmt* stmt, int c) {
    Value v;
    switch (sqlite3_column_type(stmt, c)) {
      case SQLITE_INTEGER:
        return Value::of_integer(sqlite3_column_int64(stmt, c));
      case SQLITE_FLOAT:
        return Value::of_real(sqlite3_column_double(stmt, c));
      case SQLITE_NULL:
        return v;
      default: {  // text or blob: the pointer first, then the size (SQLite's documented order)
        const bool blob = sqlite3_column_type(stmt, c) == SQLITE_BLOB;
        const void* data = blob ? sqlite3_column_blob(stmt, c)
                                : static_cast<const void*>(sqlite3_column_text(stmt, c));
        const int size = sqlite3_column_bytes(stmt, c);
        v.kind = blob ? Value::Kind::Blob : Value::Kind::Text;
        if (data) v.bytes.assign(static_cast<const char*>(data), size_t(size));
        return v;
      }
    }
  }

  // While a query is prepared, only reading is allowed: SELECT, reading columns, functions
  // (but not load_extension) and recursive CTEs. This is what keeps DROP, INSERT, ATTACH,
  // PRAGMA and transactions out of eval, before sqlite3_stmt_readonly is even asked.
  static int authorize(void* self, int action, const char* arg1, const char* arg2, const char*,
                       const char*) {
    auto* db = static_cast<EvalDatabase*>(self);
    if (!db->query_mode_) return SQLITE_OK;
    if (action == SQLITE_SELECT || action == SQLITE_READ || action == SQLITE_RECURSIVE) {
      return SQLITE_OK;
    }
    if (action == SQLITE_FUNCTION && !(arg2 && lower(arg2) == "load_extension")) return SQLITE_OK;
    if (db->denied_.empty()) {  // SQLite stops at the first denial
      const char* object = action == SQLITE_FUNCTION ? arg2 : arg1;
      if (object && lower(object).rfind("sqlite_", 0) == 0) {
        db->denied_ = "changing the schema";  // DROP, CREATE, ALTER write sqlite_master first
      } else {
        db->denied_ = action_name(action);
        if (object)
          db->denied_.append(action == SQLITE_FUNCTION ? " '" : " on '").append(object).append("'");
      }
    }
    return SQLITE_DENY;
  }
  static std::string action_name(int action) {
    switch (action) {
      case SQLITE_INSERT:
        return "INSERT";
      case SQLITE_UPDATE:
        return "UPDATE";
      case SQLITE_DELETE:
        return "DELETE";
      case SQLITE_DROP_TABLE:
        return "DROP TABLE";
      case SQLITE_CREATE_TABLE:
        return "CREATE TABLE";
      case SQLITE_ATTACH:
        return "ATTACH";
      case SQLITE_PRAGMA:
        return "PRAGMA";
      case SQLITE_TRANSACTION:
        return "a transaction";
      case SQLITE_FUNCTION:
        return "the function";
      default:
        return std::string("SQLite action ") + std::to_string(action);
    }
  }
  static int on_progress(void* self) {
    auto* db = static_cast<EvalDatabase*>(self);
    if (db->progress_left_ == kUnlimited) return 0;
    return --db->progress_left_ == 0 ? 1 : 0;  // non-zero interrupts the statement
  }

  std::vector<SchemaTable> tables_;
  DbHandle db_;
  bool query_mode_ = false;
  std::string denied_;                   // what the authorizer denied, for the message
  uint64_t progress_left_ = kUnlimited;  // progress calls left before the query is stopped
};

// ---- comparing results --------------------------------------------------------------------

// Empty when the results match; otherwise what differs.
std::string compare_results(std::vector<Row> gold, std::vector<Row> predicted, bool ordered) {
  if (gold.size() != predicted.size()) {
    return std::string("gold returns ") + std::to_string(gold.size()) + " rows, prediction " +
           std::to_string(predicted.size());
  }
  const auto less = [](const Row& a, const Row& b) {
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
      if (const int c = compare_values(a[i], b[i]); c != 0) return c < 0;
    }
    return a.size() < b.size();
  };
  if (!ordered) {
    std::sort(gold.begin(), gold.end(), less);
    std::sort(predicted.begin(), predicted.end(), less);
  }
  for (size_t r = 0; r < gold.size(); ++r) {
    const bool same = std::equal(gold[r].begin(), gold[r].end(), predicted[r].begin(),
                                 predicted[r].end(), values_equal);
    if (!same)
      return std::string(ordered ? "row " : "sorted row ") + std::to_string(r) + " differs";
  }
  return "";
}

struct RowVerdicts {
  SqlVerdict valid;
  SqlVerdict exec;
};

enum class Execute { No, Yes };

RowVerdicts evaluate(std::string_view predicted, std::string_view gold, std::string_view context,
                     uint64_t seed, const SqlExecOptions& options, Execute execute) {
  std::optional<EvalDatabase> db;
  try {
    db.emplace(context);
  } catch (const Error& e) {
    const SqlVerdict schema{SqlOutcome::SchemaError, std::string("schema error: ") + e.what()};
    return {schema, schema};
  }
  RowVerdicts out;
  std::string error;
  StmtHandle pred_stmt = db->prepare_query(predicted, error);
  out.valid = pred_stmt
                  ? SqlVerdict{SqlOutcome::Ok, ""}
                  : SqlVerdict{SqlOutcome::PredictionError, std::string("prediction ") + error};
  if (execute == Execute::No) return out;
  StmtHandle gold_stmt = db->prepare_query(gold, error);
  if (!gold_stmt) return {out.valid, {SqlOutcome::GoldError, std::string("gold query ") + error}};
  if (!pred_stmt) return {out.valid, out.valid};
  if (sqlite3_column_count(gold_stmt.get()) != sqlite3_column_count(pred_stmt.get())) {
    return {out.valid,
            {SqlOutcome::Mismatch, std::string("gold returns ") +
                                       std::to_string(sqlite3_column_count(gold_stmt.get())) +
                                       std::string(" columns, prediction ") +
                                       std::to_string(sqlite3_column_count(pred_stmt.get()))}};
  }
  std::vector<Literal> literals;
  add_literals(gold, literals);
  add_literals(predicted, literals);
  const bool ordered = has_top_level_order_by(gold);
  std::vector<Row> gold_rows, pred_rows;
  for (size_t f = 0; f < options.fills; ++f) {
    const std::string where = std::string("database ") + std::to_string(f) + ": ";
    try {
      db->fill(literals, f, seed, options.rows_per_table);
    } catch (const Error& e) {
      return {out.valid, {SqlOutcome::SchemaError, where + "cannot fill: " + e.what()}};
    }
    if (!db->run(gold_stmt.get(), options, gold_rows, error)) {
      return {out.valid, {SqlOutcome::GoldError, where + "gold query " + error}};
    }
    if (!db->run(pred_stmt.get(), options, pred_rows, error)) {
      return {out.valid, {SqlOutcome::PredictionError, where + "prediction " + error}};
    }
    const std::string difference = compare_results(gold_rows, pred_rows, ordered);
    if (!difference.empty()) return {out.valid, {SqlOutcome::Mismatch, where + difference}};
  }
  out.exec = {SqlOutcome::Ok, ""};
  return out;
}

}  // namespace

std::string normalize_sql(std::string_view sql) {
  std::vector<Token> tokens = tokenize(sql);
  while (!tokens.empty() && is_punct(tokens.back(), ";")) tokens.pop_back();
  return join_tokens(tokens.data(), tokens.data() + tokens.size(), FoldCase::Yes);
}

bool sql_exact_match(std::string_view predicted, std::string_view gold) {
  return normalize_sql(predicted) == normalize_sql(gold);
}

const char* sql_outcome_name(SqlOutcome outcome) {
  switch (outcome) {
    case SqlOutcome::Ok:
      return "ok";
    case SqlOutcome::Mismatch:
      return "mismatch";
    case SqlOutcome::PredictionError:
      return "prediction_error";
    case SqlOutcome::GoldError:
      return "gold_error";
    case SqlOutcome::SchemaError:
      return "schema_error";
  }
  return "unknown";
}

SqlVerdict sql_is_valid(std::string_view predicted, std::string_view context) {
  return evaluate(predicted, "", context, 0, {}, Execute::No).valid;
}

SqlVerdict sql_execution_match(std::string_view predicted, std::string_view gold,
                               std::string_view context, uint64_t seed,
                               const SqlExecOptions& options) {
  return evaluate(predicted, gold, context, seed, options, Execute::Yes).exec;
}

SqlEvalResult evaluate_sql_row(std::string_view predicted, std::string_view gold,
                               std::string_view context, uint64_t seed,
                               const SqlExecOptions& options) {
  const RowVerdicts v = evaluate(predicted, gold, context, seed, options, Execute::Yes);
  SqlEvalResult result;
  result.exact = sql_exact_match(predicted, gold);
  result.valid = v.valid.ok();
  result.exec_match = v.exec.ok();
  result.schema_error = v.valid.outcome == SqlOutcome::SchemaError;
  result.gold_error = v.exec.outcome == SqlOutcome::GoldError;
  result.message = !v.valid.ok() ? v.valid.message : v.exec.message;
  return result;
}

void SqlEvalSummary::add(const SqlEvalResult& result) {
  ++rows;
  exact += result.exact;
  valid += result.valid;
  exec_match += result.exec_match;
  schema_errors += result.schema_error;
  gold_errors += result.gold_error;
}

nlohmann::json sql_eval_result_json(const SqlEvalResult& result) {
  return {{"exact", result.exact},           {"valid", result.valid},
          {"exec_match", result.exec_match}, {"schema_error", result.schema_error},
          {"gold_error", result.gold_error}, {"message", result.message}};
}

nlohmann::json sql_eval_summary_json(const SqlEvalSummary& s) {
  return {{"rows", s.rows},
          {"exact", s.exact},
          {"valid", s.valid},
          {"exec_match", s.exec_match},
          {"schema_errors", s.schema_errors},
          {"gold_errors", s.gold_errors},
          {"exact_rate", s.exact_rate()},
          {"valid_rate", s.valid_rate()},
          {"exec_match_rate", s.exec_match_rate()}};
}

std::string format_sql_eval_summary(const SqlEvalSummary& s) {
  std::string out = "metric             count     rate\n";
  char line[96];
  const auto add = [&](const char* name, size_t count, std::optional<double> rate) {
    if (rate) {
      std::snprintf(line, sizeof line, "%-16s %7zu  %6.1f%%\n", name, count, 100.0 * *rate);
    } else {
      std::snprintf(line, sizeof line, "%-16s %7zu\n", name, count);
    }
    out += line;
  };
  add("rows", s.rows, std::nullopt);
  add("exact match", s.exact, s.exact_rate());
  add("valid SQL", s.valid, s.valid_rate());
  add("execution match", s.exec_match, s.exec_match_rate());
  add("schema errors", s.schema_errors, std::nullopt);
  add("gold errors", s.gold_errors, std::nullopt);
  return out;
}

}  // namespace ll
