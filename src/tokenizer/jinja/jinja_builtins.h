// What templates reach by name, attribute or `|` / `is`: Jinja's filters and tests, Python's
// str/dict methods (on an immutable sandbox: list.append and dict.update raise, as in
// jinja2's ImmutableSandboxedEnvironment), item access and slicing by Python's rules, and the
// operators. All throw EvalError; the evaluator adds the template position.
#pragma once

#include <string>

#include "tokenizer/jinja/jinja_ast.h"
#include "tokenizer/jinja/jinja_value.h"

namespace ll::jinja {

// `input | name(args)`.
Value apply_filter(const std::string& name, const Value& input, Args& args);
// `input is name(args)`.
bool apply_test(const std::string& name, const Value& input, Args& args);

// `object.name`: a dict's item (or its method: items, keys, values, get), a string method, a
// namespace attribute; Undefined when there is none. Undefined `object` throws.
Value get_attribute(const Value& object, const std::string& name);
// `object[key]`: a dict's item, a list's or string's element (negative counts from the end);
// Undefined when missing.
Value get_item(const Value& object, const Value& key);
// `object[start:stop:step]` (Undefined parts are absent) on a list or string.
Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step);

Value apply_binary(BinaryOp op, const Value& left, const Value& right);
// Python's `item in container`.
bool contains(const Value& container, const Value& item);
// The items a for loop walks: a list's elements, a dict's keys, a string's characters;
// Undefined walks nothing.
Items iterate(const Value& value);

// Throws "'NAME' is undefined" when `value` is Undefined (Jinja's UndefinedError).
void require_defined(const Value& value);
// The number of positional + keyword arguments a builtin takes, checked ("trim takes at most 1
// argument"); `name` names the builtin.
void check_arity(const std::string& name, const Args& args, size_t max_positional);
// The keyword or positional argument `index`/`key`, or Undefined.
Value argument(const Args& args, size_t index, const std::string& key);

}  // namespace ll::jinja
