// Jinja's binary operators with Python's semantics: `+` adds numbers and joins strings or
// lists (never a string and a number), `~` joins str() of both, `/` is true division, `//` and
// `%` floor like Python, comparisons order numbers, strings (code point order = UTF-8 byte
// order) and lists (or tuples, not one with the other). An Undefined operand raises, as jinja2's
// Undefined does.
#include <cmath>

#include "tokenizer/jinja/jinja_builtins.h"

namespace ll::jinja {

namespace {

constexpr size_t kMaxBuiltString = 64u << 20;  // `"x" * n` and `list * n` stop here

bool is_integral(const Value& v) {
  return v.kind == Kind::Int || v.kind == Kind::Bool;
}
int64_t int_of(const Value& v) {
  return v.kind == Kind::Bool ? v.boolean : v.integer;
}
double real_of(const Value& v) {
  return v.kind == Kind::Float ? v.real : static_cast<double>(int_of(v));
}

[[noreturn]] void unsupported(const char* op, const Value& a, const Value& b) {
  throw EvalError(std::string("unsupported operand type(s) for ") + op + ": '" + type_name(a) +
                  "' and '" + type_name(b) + "'");
}

Value repeat(const Value& sequence, int64_t times) {
  const int64_t n = std::max<int64_t>(times, 0);
  const size_t unit = sequence.is_string() ? sequence.text.size() : sequence.list->size();
  if (unit != 0 && static_cast<uint64_t>(n) > kMaxBuiltString / unit) {
    throw EvalError("repetition would build more than " + std::to_string(kMaxBuiltString) +
                    " items");
  }
  if (sequence.is_string()) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += sequence.text;
    return Value::from(std::move(out));
  }
  Items out;
  for (int64_t i = 0; i < n; ++i)
    out.insert(out.end(), sequence.list->begin(), sequence.list->end());
  return sequence.tuple ? Value::tuple_of(std::move(out)) : Value::from(std::move(out));
}

// -1, 0, 1 for a < b, a == b, a > b; throws for values Python cannot order.
int compare(const Value& a, const Value& b, const char* op) {
  if (a.is_number() && b.is_number()) {
    if (is_integral(a) && is_integral(b)) return int_of(a) < int_of(b) ? -1 : int_of(a) > int_of(b);
    const double x = real_of(a), y = real_of(b);
    return x < y ? -1 : x > y;
  }
  if (a.is_string() && b.is_string()) return a.text < b.text ? -1 : a.text > b.text;
  if (a.kind == Kind::List && b.kind == Kind::List && a.tuple == b.tuple) {
    const size_t n = std::min(a.list->size(), b.list->size());
    for (size_t i = 0; i < n; ++i) {
      if (!equal((*a.list)[i], (*b.list)[i])) return compare((*a.list)[i], (*b.list)[i], op);
    }
    return a.list->size() < b.list->size() ? -1 : a.list->size() > b.list->size();
  }
  require_defined(a);
  require_defined(b);
  throw EvalError(std::string("'") + op + "' not supported between instances of '" + type_name(a) +
                  "' and '" + type_name(b) + "'");
}

}  // namespace

Value apply_binary(BinaryOp op, const Value& a, const Value& b) {
  switch (op) {
    case BinaryOp::Eq:
      return Value::from(equal(a, b));
    case BinaryOp::Ne:
      return Value::from(!equal(a, b));
    case BinaryOp::Lt:
      return Value::from(compare(a, b, "<") < 0);
    case BinaryOp::Le:
      return Value::from(compare(a, b, "<=") <= 0);
    case BinaryOp::Gt:
      return Value::from(compare(a, b, ">") > 0);
    case BinaryOp::Ge:
      return Value::from(compare(a, b, ">=") >= 0);
    case BinaryOp::In:
      return Value::from(contains(b, a));
    case BinaryOp::NotIn:
      return Value::from(!contains(b, a));
    case BinaryOp::Concat: {
      std::string out = to_str(a) + to_str(b);
      if (out.size() > kMaxBuiltString) throw EvalError("string grows past the output limit");
      return Value::from(std::move(out));
    }
    default:
      break;
  }
  require_defined(a);
  require_defined(b);
  const bool numbers = a.is_number() && b.is_number();
  const bool integers = is_integral(a) && is_integral(b);
  switch (op) {
    case BinaryOp::Add:
      if (integers) return Value::from(int_of(a) + int_of(b));
      if (numbers) return Value::from(real_of(a) + real_of(b));
      if (a.is_string() && b.is_string()) {
        if (a.text.size() + b.text.size() > kMaxBuiltString)
          throw EvalError("string grows past the output limit");
        return Value::from(a.text + b.text);
      }
      if (a.kind == Kind::List && b.kind == Kind::List) {
        // A list and a tuple do not add: Python's TypeError.
        if (a.tuple != b.tuple) {
          throw EvalError(std::string("can only concatenate ") + type_name(a) + " (not \"" +
                          type_name(b) + "\") to " + type_name(a));
        }
        Items out = *a.list;
        out.insert(out.end(), b.list->begin(), b.list->end());
        return a.tuple ? Value::tuple_of(std::move(out)) : Value::from(std::move(out));
      }
      unsupported("+", a, b);
    case BinaryOp::Sub:
      if (integers) return Value::from(int_of(a) - int_of(b));
      if (numbers) return Value::from(real_of(a) - real_of(b));
      unsupported("-", a, b);
    case BinaryOp::Mul:
      if (integers) return Value::from(int_of(a) * int_of(b));
      if (numbers) return Value::from(real_of(a) * real_of(b));
      if ((a.is_string() || a.kind == Kind::List) && is_integral(b)) return repeat(a, int_of(b));
      if ((b.is_string() || b.kind == Kind::List) && is_integral(a)) return repeat(b, int_of(a));
      unsupported("*", a, b);
    case BinaryOp::Div:
      if (!numbers) unsupported("/", a, b);
      if (real_of(b) == 0.0) throw EvalError("division by zero");
      return Value::from(real_of(a) / real_of(b));
    case BinaryOp::FloorDiv:
    case BinaryOp::Mod: {
      const char* name = op == BinaryOp::Mod ? "%" : "//";
      if (!numbers) unsupported(name, a, b);
      if (real_of(b) == 0.0) throw EvalError("integer division or modulo by zero");
      if (integers) {
        const int64_t x = int_of(a), y = int_of(b);
        int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) --q;  // floor, as Python
        return op == BinaryOp::Mod ? Value::from(x - q * y) : Value::from(q);
      }
      const double x = real_of(a), y = real_of(b);
      const double q = std::floor(x / y);
      return op == BinaryOp::Mod ? Value::from(x - q * y) : Value::from(q);
    }
    case BinaryOp::Pow:
      if (!numbers) unsupported("**", a, b);
      if (integers && int_of(b) >= 0) {
        int64_t result = 1;
        for (int64_t i = 0; i < int_of(b) && i < 64; ++i) result *= int_of(a);
        return Value::from(result);
      }
      return Value::from(std::pow(real_of(a), real_of(b)));
    default:
      throw EvalError("unknown operator");
  }
}

}  // namespace ll::jinja
