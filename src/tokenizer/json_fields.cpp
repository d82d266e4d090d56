// See json_fields.h.
#include "tokenizer/json_fields.h"

#include "core/error.h"

namespace ll {

void JsonField::fail(std::string_view what) const {
  ll::fail("tokenizer", origin_ + ": " + path_ + " " + std::string(what));
}

JsonField JsonField::get(std::string_view key) const {
  require_object();
  const auto it = value_.find(key);
  const std::string child = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  if (it == value_.end()) {
    ll::fail("tokenizer", origin_ + ": " + child + " is missing");
  }
  return JsonField(*it, origin_, child);
}

std::optional<JsonField> JsonField::find(std::string_view key) const {
  require_object();
  const auto it = value_.find(key);
  if (it == value_.end() || it->is_null()) return std::nullopt;
  return JsonField(*it, origin_, path_.empty() ? std::string(key) : path_ + "." + std::string(key));
}

JsonField JsonField::at(size_t index) const {
  require_array();
  return JsonField(value_.at(index), origin_, path_ + "[" + std::to_string(index) + "]");
}

void JsonField::require_object() const {
  if (!value_.is_object()) fail(std::string("must be an object, not ") + value_.type_name());
}

void JsonField::require_array() const {
  if (!value_.is_array()) fail(std::string("must be an array, not ") + value_.type_name());
}

std::string JsonField::as_string() const {
  if (!value_.is_string()) fail(std::string("must be a string, not ") + value_.type_name());
  return value_.get<std::string>();
}

int64_t JsonField::as_int() const {
  if (value_.is_number_unsigned()) {
    const auto value = value_.get<uint64_t>();
    if (value > static_cast<uint64_t>(INT64_MAX)) fail("is too large");
    return static_cast<int64_t>(value);
  }
  if (!value_.is_number_integer()) {
    fail(std::string("must be an integer, not ") + value_.type_name());
  }
  return value_.get<int64_t>();
}

bool JsonField::as_bool() const {
  if (!value_.is_boolean()) fail(std::string("must be true or false, not ") + value_.type_name());
  return value_.get<bool>();
}

bool JsonField::bool_or(std::string_view key, bool fallback) const {
  const auto field = find(key);
  return field ? field->as_bool() : fallback;
}

std::optional<std::string> JsonField::optional_string(std::string_view key) const {
  const auto field = find(key);
  if (!field) return std::nullopt;
  return field->as_string();
}

std::string JsonField::type_name() const {
  return get("type").as_string();
}

}  // namespace ll
