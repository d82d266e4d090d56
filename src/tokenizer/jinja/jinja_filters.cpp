// Jinja's filters (`x | name(...)`) and tests (`x is name(...)`) that chat templates use, with
// jinja2 3.1's semantics, except `tojson`, which is transformers' override: json.dumps with
// ensure_ascii=False and no HTML escaping (jinja's own escapes < > & ').
#include <algorithm>
#include <cmath>

#include "tokenizer/jinja/jinja_builtins.h"
#include "tokenizer/jinja/jinja_strings.h"

namespace ll::jinja {

namespace {

int64_t length_of(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
      return 0;
    case Kind::String:
      return static_cast<int64_t>(decode_utf8(v.text).size());
    case Kind::List:
      return static_cast<int64_t>(v.list->size());
    case Kind::Dict:
      return static_cast<int64_t>(v.dict->size());
    default:
      throw EvalError(std::string("object of type '") + kind_name(v.kind) + "' has no len()");
  }
}

// jinja's make_attrgetter: "a.b.0" looks up item a, then b, then element 0.
Value lookup_path(const Value& item, const std::string& path) {
  Value current = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    Value key = Value::from(part);
    if (!part.empty() && part.find_first_not_of("0123456789") == std::string::npos) {
      key = Value::from(static_cast<int64_t>(std::stoll(part)));
    }
    current = current.is_undefined() ? current : get_item(current, key);
    if (dot == std::string::npos) return current;
    start = dot + 1;
  }
}

// select/reject/selectattr/rejectattr: `args` from `first_test_arg` on are the test name and
// its arguments (no test: truthiness).
enum class Keep { Matching, NonMatching };
Value filter_items(const Value& input, const Args& args, size_t first_test_arg,
                   const std::string* attribute, Keep keep) {
  Items out;
  std::string test;
  Args test_args;
  if (args.positional.size() > first_test_arg) {
    const Value& name = args.positional[first_test_arg];
    if (!name.is_string()) throw EvalError("a test name must be a string");
    test = name.text;
    test_args.positional.assign(args.positional.begin() + static_cast<long>(first_test_arg) + 1,
                                args.positional.end());
  }
  for (const Value& item : iterate(input)) {
    const Value subject = attribute ? lookup_path(item, *attribute) : item;
    const bool hit = test.empty() ? truthy(subject) : apply_test(test, subject, test_args);
    if (hit == (keep == Keep::Matching)) out.push_back(item);
  }
  return Value::from(std::move(out));
}

Value map_items(const Value& input, Args& args) {
  Items out;
  const Value attribute = argument(args, 99, "attribute");
  if (attribute.is_string()) {
    const Value fallback = argument(args, 99, "default");
    for (const Value& item : iterate(input)) {
      Value v = lookup_path(item, attribute.text);
      out.push_back(v.is_undefined() && !fallback.is_undefined() ? fallback : v);
    }
    return Value::from(std::move(out));
  }
  if (args.positional.empty() || !args.positional[0].is_string()) {
    throw EvalError("map needs a filter name or attribute=");
  }
  const std::string filter = args.positional[0].text;
  Args rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : iterate(input)) out.push_back(apply_filter(filter, item, rest));
  return Value::from(std::move(out));
}

Value items_of(const Value& input) {
  if (input.is_undefined()) return Value::from(Items{});
  if (!input.is_mapping()) throw EvalError("items: can only get item pairs from a mapping");
  Items out;
  for (const auto& [k, v] : *input.dict) out.push_back(Value::tuple_of(Items{Value::from(k), v}));
  return Value::from(std::move(out));
}

int json_indent(const Value& indent) {
  if (indent.is_undefined() || indent.is_none()) return -1;
  if (indent.kind == Kind::Int) return static_cast<int>(std::clamp<int64_t>(indent.integer, 0, 64));
  if (indent.is_string()) throw EvalError("tojson: a string indent is not supported");
  throw EvalError("tojson: indent must be an integer");
}

std::string indent_text(const std::string& text, const Value& width_v, const Value& first_v,
                        const Value& blank_v) {
  const std::string pad =
      width_v.is_string()
          ? width_v.text
          : std::string(width_v.kind == Kind::Int
                            ? static_cast<size_t>(std::max<int64_t>(width_v.integer, 0))
                            : 4,
                        ' ');
  const bool first = truthy(first_v);
  const bool blank = truthy(blank_v);
  std::string out;
  size_t start = 0;
  bool is_first = true;
  while (start <= text.size()) {
    const size_t nl = text.find('\n', start);
    const std::string line =
        text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if ((is_first ? first : true) && (blank || !line.empty())) out += pad;
    out += line;
    if (nl == std::string::npos) break;
    out += '\n';
    start = nl + 1;
    is_first = false;
  }
  return out;
}

}  // namespace

Value apply_filter(const std::string& name, const Value& input, Args& args) {
  if (name == "trim") {
    check_arity(name, args, 1);
    const Value chars = argument(args, 0, "chars");
    return Value::from(
        strip(to_str(input), StripSide::Both, chars.is_string() ? &chars.text : nullptr));
  }
  if (name == "tojson") {
    check_arity(name, args, 1);
    return Value::from(to_json(input, json_indent(argument(args, 0, "indent"))));
  }
  if (name == "length" || name == "count") return Value::from(length_of(input));
  if (name == "string") return Value::from(to_str(input));
  if (name == "upper") return Value::from(to_upper(to_str(input)));
  if (name == "lower") return Value::from(to_lower(to_str(input)));
  if (name == "capitalize") return Value::from(capitalize(to_str(input)));
  if (name == "title") return Value::from(to_title(to_str(input)));
  if (name == "safe" || name == "e" || name == "escape") {
    if (name != "safe")
      throw EvalError("filter '" + name + "' is not supported (autoescape is off)");
    return input;
  }
  if (name == "replace") {
    check_arity(name, args, 3);
    const Value from = argument(args, 0, "old"), to = argument(args, 1, "new"),
                count = argument(args, 2, "count");
    return Value::from(replace_all(to_str(input), to_str(from), to_str(to),
                                   count.kind == Kind::Int ? count.integer : -1));
  }
  if (name == "join") {
    const Value sep = argument(args, 0, "d");
    const Value attribute = argument(args, 1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& item : iterate(input)) {
      if (!first) out += to_str(sep);
      first = false;
      out += to_str(attribute.is_string() ? lookup_path(item, attribute.text) : item);
    }
    return Value::from(std::move(out));
  }
  if (name == "default" || name == "d") {
    const Value fallback = argument(args, 0, "default_value");
    const bool boolean = truthy(argument(args, 1, "boolean"));
    if (input.is_undefined() || (boolean && !truthy(input))) {
      return fallback.is_undefined() ? Value::from(std::string()) : fallback;
    }
    return input;
  }
  if (name == "first" || name == "last") {
    const Items items = iterate(input);
    if (items.empty()) return Value::undefined();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") return Value::from(iterate(input));
  if (name == "items") return items_of(input);
  if (name == "reverse") {
    if (input.is_string()) {
      std::u32string cps = decode_utf8(input.text);
      std::reverse(cps.begin(), cps.end());
      return Value::from(encode_utf8(cps));
    }
    Items items = iterate(input);
    std::reverse(items.begin(), items.end());
    return Value::from(std::move(items));
  }
  if (name == "select") return filter_items(input, args, 0, nullptr, Keep::Matching);
  if (name == "reject") return filter_items(input, args, 0, nullptr, Keep::NonMatching);
  if (name == "selectattr" || name == "rejectattr") {
    if (args.positional.empty() || !args.positional[0].is_string())
      throw EvalError(name + " needs an attribute name");
    const std::string attribute = args.positional[0].text;
    return filter_items(input, args, 1, &attribute,
                        name == "selectattr" ? Keep::Matching : Keep::NonMatching);
  }
  if (name == "map") return map_items(input, args);
  if (name == "unique") {
    Items out;
    for (const Value& item : iterate(input)) {
      if (std::none_of(out.begin(), out.end(), [&](const Value& v) { return equal(v, item); }))
        out.push_back(item);
    }
    return Value::from(std::move(out));
  }
  if (name == "int") {
    if (input.kind == Kind::Int) return input;
    if (input.kind == Kind::Bool) return Value::from(static_cast<int64_t>(input.boolean));
    if (input.kind == Kind::Float) return Value::from(static_cast<int64_t>(input.real));
    if (input.is_string()) {
      try {
        return Value::from(
            static_cast<int64_t>(std::stoll(strip(input.text, StripSide::Both, nullptr))));
      } catch (const std::exception&) {
      }
    }
    const Value fallback = argument(args, 0, "default");
    return fallback.is_undefined() ? Value::from(int64_t{0}) : fallback;
  }
  if (name == "float") {
    if (input.is_number())
      return Value::from(
          input.kind == Kind::Float
              ? input.real
              : static_cast<double>(input.kind == Kind::Bool ? input.boolean : input.integer));
    if (input.is_string()) {
      try {
        return Value::from(std::stod(input.text));
      } catch (const std::exception&) {
      }
    }
    return Value::from(0.0);
  }
  if (name == "abs") {
    if (input.kind == Kind::Int)
      return Value::from(input.integer < 0 ? -input.integer : input.integer);
    if (input.kind == Kind::Float) return Value::from(std::fabs(input.real));
    throw EvalError(std::string("bad operand type for abs(): '") + kind_name(input.kind) + "'");
  }
  if (name == "indent") {
    return Value::from(indent_text(to_str(input), argument(args, 0, "width"),
                                   argument(args, 1, "first"), argument(args, 2, "blank")));
  }
  if (name == "sum") {
    Value total = Value::from(int64_t{0});
    for (const Value& item : iterate(input)) total = apply_binary(BinaryOp::Add, total, item);
    return total;
  }
  throw EvalError("no filter named '" + name + "'");
}

bool apply_test(const std::string& name, const Value& input, Args& args) {
  const Value other = argument(args, 0, "other");
  if (name == "defined") return !input.is_undefined();
  if (name == "undefined") return input.is_undefined();
  if (name == "none") return input.is_none();
  if (name == "string") return input.is_string();
  if (name == "mapping") return input.kind == Kind::Dict;
  if (name == "number") return input.is_number();
  if (name == "integer") return input.kind == Kind::Int;
  if (name == "float") return input.kind == Kind::Float;
  if (name == "boolean") return input.kind == Kind::Bool;
  if (name == "true") return input.kind == Kind::Bool && input.boolean;
  if (name == "false") return input.kind == Kind::Bool && !input.boolean;
  if (name == "callable") return input.kind == Kind::Function;
  // jinja2's Undefined defines __iter__, __len__ and __getitem__, so it is both.
  if (name == "iterable") {
    return input.is_undefined() || input.is_string() || input.kind == Kind::List ||
           input.kind == Kind::Dict;
  }
  if (name == "sequence") {
    return input.is_undefined() || input.is_string() || input.kind == Kind::List ||
           input.kind == Kind::Dict;
  }
  if (name == "sameas") return input.kind == other.kind && equal(input, other);
  if (name == "equalto" || name == "eq" || name == "==") return equal(input, other);
  if (name == "ne" || name == "!=") return !equal(input, other);
  if (name == "lt" || name == "lessthan") return truthy(apply_binary(BinaryOp::Lt, input, other));
  if (name == "le") return truthy(apply_binary(BinaryOp::Le, input, other));
  if (name == "gt" || name == "greaterthan")
    return truthy(apply_binary(BinaryOp::Gt, input, other));
  if (name == "ge") return truthy(apply_binary(BinaryOp::Ge, input, other));
  if (name == "in") return contains(argument(args, 0, "seq"), input);
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (input.kind != Kind::Int) throw EvalError("test '" + name + "' needs an integer");
    const int64_t by = name == "divisibleby" ? (other.kind == Kind::Int ? other.integer : 0) : 2;
    if (by == 0) throw EvalError("divisibleby needs a non-zero integer");
    const bool divisible = input.integer % by == 0;
    return name == "odd" ? !divisible : divisible;
  }
  if (name == "lower") return input.is_string() && to_lower(input.text) == input.text;
  if (name == "upper") return input.is_string() && to_upper(input.text) == input.text;
  throw EvalError("no test named '" + name + "'");
}

}  // namespace ll::jinja
