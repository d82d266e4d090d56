// Attribute and item access, slicing, operators and Python's str/dict methods for Jinja values
// (see jinja_builtins.h). Strings are indexed and sliced by code point, as in Python.
#include <algorithm>
#include <cmath>

#include "tokenizer/jinja/jinja_builtins.h"
#include "tokenizer/jinja/jinja_strings.h"

namespace ll::jinja {

void require_defined(const Value& value) {
  if (value.is_undefined()) {
    throw EvalError(value.text.empty() ? "value is undefined"
                                       : "'" + value.text + "' is undefined");
  }
}

void check_arity(const std::string& name, const Args& args, size_t max_positional) {
  if (args.positional.size() > max_positional) {
    throw EvalError(name + " takes at most " + std::to_string(max_positional) + " argument(s), " +
                    std::to_string(args.positional.size()) + " given");
  }
}

Value argument(const Args& args, size_t index, const std::string& key) {
  for (const auto& [k, v] : args.keyword) {
    if (k == key) return v;
  }
  if (index < args.positional.size()) return args.positional[index];
  return Value::undefined();
}

namespace {

// Python's index normalisation: negative counts from the end.
int64_t normalise_index(int64_t index, size_t size) {
  return index < 0 ? index + static_cast<int64_t>(size) : index;
}

Value bound(Callable f) {
  return Value::from(std::move(f));
}

std::string string_argument(const Args& args, size_t index, const std::string& key,
                            const std::string& method) {
  const Value v = argument(args, index, key);
  if (!v.is_string()) {
    throw EvalError(method + "() argument must be str, not " + std::string(kind_name(v.kind)));
  }
  return v.text;
}

Value string_method(const std::string& self, const std::string& name) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const StripSide side = name == "strip"    ? StripSide::Both
                           : name == "lstrip" ? StripSide::Left
                                              : StripSide::Right;
    return bound([self, side, name](Args& a) {
      check_arity(name, a, 1);
      const Value chars = argument(a, 0, "chars");
      if (chars.is_undefined() || chars.is_none()) return Value::from(strip(self, side, nullptr));
      if (!chars.is_string()) throw EvalError(name + " arg must be None or str");
      return Value::from(strip(self, side, &chars.text));
    });
  }
  if (name == "upper") return bound([self](Args&) { return Value::from(to_upper(self)); });
  if (name == "lower") return bound([self](Args&) { return Value::from(to_lower(self)); });
  if (name == "title") return bound([self](Args&) { return Value::from(to_title(self)); });
  if (name == "capitalize") return bound([self](Args&) { return Value::from(capitalize(self)); });
  if (name == "startswith" || name == "endswith") {
    return bound([self, name](Args& a) {
      check_arity(name, a, 1);
      const Value prefix = argument(a, 0, "prefix");
      Items candidates = prefix.kind == Kind::List ? *prefix.list : Items{prefix};
      for (const Value& c : candidates) {
        if (!c.is_string()) throw EvalError(name + " first arg must be str or a tuple of str");
        const bool hit =
            name == "startswith"
                ? self.compare(0, c.text.size(), c.text) == 0 && self.size() >= c.text.size()
                : self.size() >= c.text.size() &&
                      self.compare(self.size() - c.text.size(), c.text.size(), c.text) == 0;
        if (hit) return Value::from(true);
      }
      return Value::from(false);
    });
  }
  if (name == "split" || name == "rsplit") {
    return bound([self, name](Args& a) {
      check_arity(name, a, 2);
      const Value sep = argument(a, 0, "sep");
      const Value max = argument(a, 1, "maxsplit");
      const int64_t maxsplit = max.kind == Kind::Int ? max.integer : -1;
      std::vector<std::string> parts;
      if (sep.is_undefined() || sep.is_none()) {
        parts =
            split_whitespace(self, maxsplit, name == "rsplit" ? SplitFrom::Right : SplitFrom::Left);
      } else {
        if (!sep.is_string() || sep.text.empty())
          throw EvalError("split() needs a non-empty str separator");
        parts = split_on(self, sep.text, maxsplit,
                         name == "rsplit" ? SplitFrom::Right : SplitFrom::Left);
      }
      Items out;
      for (auto& p : parts) out.push_back(Value::from(std::move(p)));
      return Value::from(std::move(out));
    });
  }
  if (name == "replace") {
    return bound([self](Args& a) {
      check_arity("replace", a, 3);
      const std::string from = string_argument(a, 0, "old", "replace");
      const std::string to = string_argument(a, 1, "new", "replace");
      const Value count = argument(a, 2, "count");
      return Value::from(replace_all(self, from, to, count.kind == Kind::Int ? count.integer : -1));
    });
  }
  if (name == "find" || name == "count") {
    return bound([self, name](Args& a) {
      check_arity(name, a, 1);
      const std::string needle = string_argument(a, 0, "sub", name);
      if (name == "count")
        return Value::from(static_cast<int64_t>(count_occurrences(self, needle)));
      const size_t at = self.find(needle);
      if (at == std::string::npos) return Value::from(int64_t{-1});
      return Value::from(static_cast<int64_t>(decode_utf8(self.substr(0, at)).size()));
    });
  }
  if (name == "join") {
    return bound([self](Args& a) {
      check_arity("join", a, 1);
      std::string out;
      const Items items = iterate(argument(a, 0, "iterable"));
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].is_string())
          throw EvalError("sequence item " + std::to_string(i) + ": expected str instance");
        if (i) out += self;
        out += items[i].text;
      }
      return Value::from(std::move(out));
    });
  }
  if (name == "format") throw EvalError("str.format is not supported");
  return Value::undefined(name);
}

Value dict_method(const Value& self, const std::string& name) {
  if (name == "items") {
    return bound([self](Args&) {
      Items out;
      for (const auto& [k, v] : *self.dict)
        out.push_back(Value::tuple_of(Items{Value::from(k), v}));
      return Value::from(std::move(out));
    });
  }
  if (name == "keys") {
    return bound([self](Args&) {
      Items out;
      for (const auto& entry : *self.dict) out.push_back(Value::from(entry.first));
      return Value::from(std::move(out));
    });
  }
  if (name == "values") {
    return bound([self](Args&) {
      Items out;
      for (const auto& entry : *self.dict) out.push_back(entry.second);
      return Value::from(std::move(out));
    });
  }
  if (name == "get") {
    return bound([self](Args& a) {
      check_arity("get", a, 2);
      const Value key = argument(a, 0, "key");
      const Value* found = key.is_string() ? self.find(key.text) : nullptr;
      if (found) return *found;
      const Value fallback = argument(a, 1, "default");
      return fallback.is_undefined() ? Value::none() : fallback;
    });
  }
  if (name == "update" || name == "pop" || name == "setdefault" || name == "clear" ||
      name == "popitem") {
    return bound([name](Args&) -> Value {
      throw EvalError("dict." + name + " is not allowed: the sandbox makes values immutable");
    });
  }
  return Value::undefined(name);
}

}  // namespace

Value get_attribute(const Value& object, const std::string& name) {
  require_defined(object);
  switch (object.kind) {
    case Kind::Dict: {
      // Jinja tries the Python attribute first: `d.items` is the method even when d has an
      // "items" key.
      Value method = dict_method(object, name);
      if (!method.is_undefined()) return method;
      const Value* found = object.find(name);
      return found ? *found : Value::undefined(name);
    }
    case Kind::Namespace: {
      const Value* found = object.find(name);
      return found ? *found : Value::undefined(name);
    }
    case Kind::String:
      return string_method(object.text, name);
    case Kind::List:
      if (name == "append" || name == "extend" || name == "insert" || name == "pop" ||
          name == "remove" || name == "sort" || name == "reverse" || name == "clear") {
        return bound([name](Args&) -> Value {
          throw EvalError("list." + name + " is not allowed: the sandbox makes values immutable");
        });
      }
      return Value::undefined(name);
    default:
      return Value::undefined(name);
  }
}

Value get_item(const Value& object, const Value& key) {
  require_defined(object);
  switch (object.kind) {
    case Kind::Dict:
    case Kind::Namespace: {
      if (!key.is_string()) return Value::undefined();
      const Value* found = object.find(key.text);
      if (found) return *found;
      return object.kind == Kind::Dict ? dict_method(object, key.text) : Value::undefined(key.text);
    }
    case Kind::List:
    case Kind::String: {
      if (key.is_string())
        return object.is_string() ? string_method(object.text, key.text)
                                  : Value::undefined(key.text);
      if (key.kind != Kind::Int && key.kind != Kind::Bool) return Value::undefined();
      const int64_t raw = key.kind == Kind::Bool ? key.boolean : key.integer;
      if (object.kind == Kind::List) {
        const int64_t i = normalise_index(raw, object.list->size());
        if (i < 0 || i >= static_cast<int64_t>(object.list->size())) return Value::undefined();
        return (*object.list)[static_cast<size_t>(i)];
      }
      const std::u32string chars = decode_utf8(object.text);
      const int64_t i = normalise_index(raw, chars.size());
      if (i < 0 || i >= static_cast<int64_t>(chars.size())) return Value::undefined();
      return Value::from(encode_utf8(chars.substr(static_cast<size_t>(i), 1)));
    }
    default:
      return Value::undefined();
  }
}

namespace {

// Python's slice.indices: the elements [start, stop) by `step` of a sequence of `size`.
std::vector<size_t> slice_indices(size_t size, const Value& start_v, const Value& stop_v,
                                  const Value& step_v) {
  const auto as_int = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (v.kind == Kind::Int) return v.integer;
    if (v.kind == Kind::Bool) return v.boolean ? 1 : 0;
    throw EvalError(std::string("slice ") + what + " must be an integer or None");
  };
  const int64_t n = static_cast<int64_t>(size);
  const int64_t step = as_int(step_v, "step").value_or(1);
  if (step == 0) throw EvalError("slice step cannot be zero");
  const auto clamp = [&](std::optional<int64_t> v, int64_t fallback) {
    if (!v) return fallback;
    int64_t i = *v < 0 ? *v + n : *v;
    if (step > 0) return std::clamp<int64_t>(i, 0, n);
    return std::clamp<int64_t>(i, -1, n - 1);
  };
  const int64_t start = clamp(as_int(start_v, "start"), step > 0 ? 0 : n - 1);
  const int64_t stop = clamp(as_int(stop_v, "stop"), step > 0 ? n : -1);
  std::vector<size_t> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
    out.push_back(static_cast<size_t>(i));
  return out;
}

}  // namespace

Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step) {
  require_defined(object);
  if (object.kind == Kind::List) {
    Items out;
    for (size_t i : slice_indices(object.list->size(), start, stop, step))
      out.push_back((*object.list)[i]);
    return object.tuple ? Value::tuple_of(std::move(out)) : Value::from(std::move(out));
  }
  if (object.is_string()) {
    const std::u32string chars = decode_utf8(object.text);
    std::u32string out;
    for (size_t i : slice_indices(chars.size(), start, stop, step)) out += chars[i];
    return Value::from(encode_utf8(out));
  }
  throw EvalError(std::string("'") + kind_name(object.kind) + "' object is not subscriptable");
}

Items iterate(const Value& value) {
  switch (value.kind) {
    case Kind::Undefined:
      return {};
    case Kind::List:
      return *value.list;
    case Kind::Dict: {
      Items keys;
      for (const auto& entry : *value.dict) keys.push_back(Value::from(entry.first));
      return keys;
    }
    case Kind::String: {
      Items chars;
      for (char32_t c : decode_utf8(value.text))
        chars.push_back(Value::from(encode_utf8(std::u32string(1, c))));
      return chars;
    }
    default:
      throw EvalError(std::string("'") + kind_name(value.kind) + "' object is not iterable");
  }
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::Undefined:
      return false;
    case Kind::String:
      if (!item.is_string()) {
        throw EvalError(std::string("'in <string>' requires string as left operand, not ") +
                        kind_name(item.kind));
      }
      return container.text.find(item.text) != std::string::npos;
    case Kind::List:
      return std::any_of(container.list->begin(), container.list->end(),
                         [&](const Value& v) { return equal(v, item); });
    case Kind::Dict:
    case Kind::Namespace:
      return item.is_string() && container.find(item.text) != nullptr;
    default:
      throw EvalError(std::string("argument of type '") + kind_name(container.kind) +
                      "' is not iterable");
  }
}

}  // namespace ll::jinja
