// Typed reads of tokenizer.json fields that fail with a message naming the file and the field
// ("[tokenizer] tokenizer.json: model.merges[3] must be a string or a pair of strings"), so a
// malformed file never surfaces as a bare nlohmann exception.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace ll {

class JsonField {
 public:
  JsonField(const nlohmann::json& value, const std::string& origin, std::string path)
      : value_(value), origin_(origin), path_(std::move(path)) {}

  const nlohmann::json& value() const { return value_; }
  const std::string& path() const { return path_; }
  const std::string& origin() const { return origin_; }

  [[noreturn]] void fail(std::string_view what) const;  // "<origin>: <path> <what>"

  // Members of an object. `get` fails when the key is absent; `find` returns nullopt when it
  // is absent or null.
  JsonField get(std::string_view key) const;
  std::optional<JsonField> find(std::string_view key) const;
  JsonField at(size_t index) const;

  void require_object() const;
  void require_array() const;
  std::string as_string() const;
  int64_t as_int() const;
  bool as_bool() const;

  // Optional members with a default for absent or null.
  bool bool_or(std::string_view key, bool fallback) const;
  std::optional<std::string> optional_string(std::string_view key) const;
  std::string type_name() const;  // the "type" member, required

 private:
  const nlohmann::json& value_;
  const std::string& origin_;
  std::string path_;
};

}  // namespace ll
