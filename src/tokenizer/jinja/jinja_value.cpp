// Python semantics for Jinja values: see jinja_value.h.
#include "tokenizer/jinja/jinja_value.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "tokenizer/utf8.h"

namespace ll::jinja {

Value Value::from_json(const nlohmann::ordered_json& json) {
  switch (json.type()) {
    case nlohmann::ordered_json::value_t::null:
      return none();
    case nlohmann::ordered_json::value_t::boolean:
      return from(json.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned:
      return from(json.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_float:
      return from(json.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return from(json.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      Items items;
      for (const auto& item : json) items.push_back(from_json(item));
      return from(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Entries items;
      for (const auto& [key, item] : json.items()) items.emplace_back(key, from_json(item));
      return from(std::move(items));
    }
    default:
      throw EvalError("JSON value of an unsupported type");
  }
}

const Value* Value::find(const std::string& key) const {
  if (!dict) return nullptr;
  for (const auto& [k, v] : *dict) {
    if (k == key) return &v;
  }
  return nullptr;
}

bool truthy(const Value& value) {
  switch (value.kind) {
    case Kind::Undefined:
    case Kind::None:
      return false;
    case Kind::Bool:
      return value.boolean;
    case Kind::Int:
      return value.integer != 0;
    case Kind::Float:
      return value.real != 0.0;
    case Kind::String:
      return !value.text.empty();
    case Kind::List:
      return !value.list->empty();
    case Kind::Dict:
      return !value.dict->empty();
    case Kind::Namespace:
    case Kind::Function:
      return true;
  }
  return false;
}

namespace {

double number_of(const Value& v) {
  if (v.kind == Kind::Float) return v.real;
  if (v.kind == Kind::Bool) return v.boolean ? 1.0 : 0.0;
  return static_cast<double>(v.integer);
}

}  // namespace

bool equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind != Kind::Float && b.kind != Kind::Float) {
      const int64_t x = a.kind == Kind::Bool ? a.boolean : a.integer;
      const int64_t y = b.kind == Kind::Bool ? b.boolean : b.integer;
      return x == y;
    }
    return number_of(a) == number_of(b);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::Undefined:
    case Kind::None:
      return true;
    case Kind::String:
      return a.text == b.text;
    case Kind::List:
      if (a.tuple != b.tuple || a.list->size() != b.list->size()) return false;
      for (size_t i = 0; i < a.list->size(); ++i) {
        if (!equal((*a.list)[i], (*b.list)[i])) return false;
      }
      return true;
    case Kind::Dict:
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [key, item] : *a.dict) {
        const Value* other = b.find(key);
        if (!other || !equal(item, *other)) return false;
      }
      return true;
    case Kind::Namespace:
      return a.dict == b.dict;
    case Kind::Function:
      return a.function == b.function;
    default:
      return false;
  }
}

std::string float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  // Shortest round-trip digits in scientific form, then Python's layout: positional when
  // the exponent is in [-4, 16), else "1e+16" / "1.5e-07".
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  std::string sci(buf, end);
  const size_t e = sci.find('e');
  std::string mantissa = sci.substr(0, e);
  const int exponent = std::stoi(sci.substr(e + 1));
  const bool negative = mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  std::string out = negative ? "-" : "";
  const size_t point = static_cast<size_t>(exponent + 1);  // digits before the point
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out.append("0.");
      out.append(static_cast<size_t>(-exponent - 1), '0');
      out.append(digits);
    } else if (digits.size() <= point) {
      out.append(digits);
      out.append(point - digits.size(), '0');
      out.append(".0");
    } else {
      out.append(digits, 0, point);
      out.push_back('.');
      out.append(digits, point, std::string::npos);
    }
  } else {
    out.push_back(digits[0]);
    if (digits.size() > 1) {
      out.push_back('.');
      out.append(digits, 1, std::string::npos);
    }
    char exp[16];
    std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out.append(exp);
  }
  return out;
}

namespace {

std::string string_repr(const std::string& s) {
  // Python picks single quotes unless the text holds ' and no ".
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == static_cast<unsigned char>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += quote;
  return out;
}

void append_json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void append_json(std::string& out, const Value& v, int indent, int depth) {
  const auto newline = [&](int level) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * level), ' ');
  };
  const char* item_sep = indent < 0 ? ", " : ",";
  switch (v.kind) {
    case Kind::None:
      out += "null";
      return;
    case Kind::Bool:
      out += v.boolean ? "true" : "false";
      return;
    case Kind::Int:
      out += std::to_string(v.integer);
      return;
    case Kind::Float:
      if (std::isnan(v.real)) {
        out += "NaN";
      } else if (std::isinf(v.real)) {
        out += v.real < 0 ? "-Infinity" : "Infinity";
      } else {
        out += float_repr(v.real);
      }
      return;
    case Kind::String:
      append_json_string(out, v.text);
      return;
    case Kind::List:
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < v.list->size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        append_json(out, (*v.list)[i], indent, depth + 1);
      }
      newline(depth);
      out += ']';
      return;
    case Kind::Dict:
    case Kind::Namespace:
      if (v.dict->empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < v.dict->size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        append_json_string(out, (*v.dict)[i].first);
        out += ": ";
        append_json(out, (*v.dict)[i].second, indent, depth + 1);
      }
      newline(depth);
      out += '}';
      return;
    default:
      throw EvalError(std::string("Object of type ") + kind_name(v.kind) +
                      " is not JSON serializable");
  }
}

}  // namespace

std::string to_repr(const Value& value) {
  switch (value.kind) {
    case Kind::String:
      return string_repr(value.text);
    case Kind::List: {
      std::string out = value.tuple ? "(" : "[";
      for (size_t i = 0; i < value.list->size(); ++i) {
        if (i) out += ", ";
        out += to_repr((*value.list)[i]);
      }
      if (value.tuple && value.list->size() == 1) out += ",";
      return out + (value.tuple ? ")" : "]");
    }
    case Kind::Undefined:
      return "Undefined";
    case Kind::Dict: {
      std::string out = "{";
      for (size_t i = 0; i < value.dict->size(); ++i) {
        if (i) out += ", ";
        out += string_repr((*value.dict)[i].first) + ": " + to_repr((*value.dict)[i].second);
      }
      return out + "}";
    }
    default:
      return to_str(value);
  }
}

std::string to_str(const Value& value) {
  switch (value.kind) {
    case Kind::Undefined:
      return "";
    case Kind::None:
      return "None";
    case Kind::Bool:
      return value.boolean ? "True" : "False";
    case Kind::Int:
      return std::to_string(value.integer);
    case Kind::Float:
      return float_repr(value.real);
    case Kind::String:
      return value.text;
    case Kind::Namespace:
      return "<Namespace>";
    case Kind::Function:
      return "<function>";
    default:
      return to_repr(value);
  }
}

std::string to_json(const Value& value, int indent) {
  std::string out;
  append_json(out, value, indent, 0);
  return out;
}

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::Undefined:
      return "Undefined";
    case Kind::None:
      return "NoneType";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::List:
      return "list";
    case Kind::Dict:
      return "dict";
    case Kind::Namespace:
      return "Namespace";
    case Kind::Function:
      return "function";
  }
  return "?";
}

const char* type_name(const Value& value) {
  return value.kind == Kind::List && value.tuple ? "tuple" : kind_name(value.kind);
}

std::u32string decode_utf8(const std::string& text) {
  // Ill-formed bytes (JSON parsers reject them, so only text built by hand has them) read as
  // Python's bytes.decode("utf-8", "replace") reads them: one U+FFFD per maximal subpart.
  const std::string repaired = utf8::repair_lossy(text);
  std::u32string out;
  size_t pos = 0;
  while (pos < repaired.size()) {
    const size_t n = utf8::sequence_length(repaired, pos);
    out += utf8::decode_at(repaired, pos, n);
    pos += n;
  }
  return out;
}

std::string encode_utf8(const std::u32string& text) {
  std::string out;
  for (char32_t c : text) utf8::append(out, c);
  return out;
}

}  // namespace ll::jinja
