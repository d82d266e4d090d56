// Values of our Jinja interpreter, with Python's semantics where chat templates can see them:
// truthiness, `==` (True == 1, "" != False, dicts equal whatever their order), `str()` and
// `repr()` (`None`, `True`, `1.0`, `['a', 'b']`, `('a', 1)`), and json.dumps as transformers'
// `tojson` calls it (ensure_ascii=False, sort_keys=False). Lists, dicts and namespaces are shared
// by reference, as Python objects are; dicts keep insertion order.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace ll::jinja {

// Thrown by value operations, filters and methods without a position; the evaluator turns it
// into an ll::Error naming the template's line and column.
class EvalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Value;
using Items = std::vector<Value>;
using Entries = std::vector<std::pair<std::string, Value>>;  // insertion order, string keys

// Positional and keyword arguments of a call.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
using Callable = std::function<Value(Args&)>;

enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Function };

struct Value {
  Kind kind = Kind::Undefined;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  bool tuple = false;  // a List made as a Python tuple (`(a, b)`, dict.items()): prints (a, b)
  std::string text;    // String; the name looked up for Undefined
  std::shared_ptr<Items> list;         // Kind::List (a list or a tuple)
  std::shared_ptr<Entries> dict;       // Entries and Namespace (its attributes)
  std::shared_ptr<Callable> function;  // Callable (a global, a filter-like method, a macro)

  static Value undefined(std::string name = "") {
    Value v;
    v.text = std::move(name);
    return v;
  }
  static Value none() { return make(Kind::None); }
  static Value from(bool b) {
    Value v = make(Kind::Bool);
    v.boolean = b;
    return v;
  }
  static Value from(int64_t i) {
    Value v = make(Kind::Int);
    v.integer = i;
    return v;
  }
  static Value from(double d) {
    Value v = make(Kind::Float);
    v.real = d;
    return v;
  }
  static Value from(std::string s) {
    Value v = make(Kind::String);
    v.text = std::move(s);
    return v;
  }
  static Value from(Items items) {
    Value v = make(Kind::List);
    v.list = std::make_shared<Items>(std::move(items));
    return v;
  }
  static Value tuple_of(Items items) {
    Value v = from(std::move(items));
    v.tuple = true;
    return v;
  }
  static Value from(Entries items, Kind kind = Kind::Dict) {
    Value v = make(kind);
    v.dict = std::make_shared<Entries>(std::move(items));
    return v;
  }
  static Value from(Callable f) {
    Value v = make(Kind::Function);
    v.function = std::make_shared<Callable>(std::move(f));
    return v;
  }
  // Objects keep their key order (ordered_json), as Python dicts from json.loads do.
  static Value from_json(const nlohmann::ordered_json& json);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_mapping() const { return kind == Kind::Dict || kind == Kind::Namespace; }

  // The dict entry for `key`, or nullptr.
  const Value* find(const std::string& key) const;

 private:
  static Value make(Kind k) {
    Value v;
    v.kind = k;
    return v;
  }
};

// Python's bool(value); Undefined is false.
bool truthy(const Value& value);
// Python's `a == b` (bool and int compare as numbers; Undefined equals only Undefined).
bool equal(const Value& a, const Value& b);
// Python's str(value) as Jinja prints it: Undefined prints as "".
std::string to_str(const Value& value);
// Python's repr(value): quotes strings, as inside a printed list.
std::string to_repr(const Value& value);
// Python's repr(float): the shortest text that reads back, "1.0", "1e+16", "inf".
std::string float_repr(double value);
// json.dumps(value, ensure_ascii=False, indent=indent) (indent < 0: None, one line with
// ", " and ": "); a value JSON cannot hold (a function, Undefined) throws.
std::string to_json(const Value& value, int indent);
// A name for the value's type in errors ("string", "list", ...).
const char* kind_name(Kind kind);
// Python's type(value).__name__: kind_name, but "tuple" for a tuple.
const char* type_name(const Value& value);

// Code points of a UTF-8 string and back (Python indexes and slices strings by code point).
std::u32string decode_utf8(const std::string& text);
std::string encode_utf8(const std::u32string& text);

}  // namespace ll::jinja
