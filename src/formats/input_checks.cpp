// See input_checks.h.
#include "formats/input_checks.h"

#include <cstdio>
#include <limits>

#include "core/error.h"

namespace ll {

nlohmann::json parse_json_text(std::string_view text, std::string_view origin,
                               const std::string& where) {
  // allow_exceptions = false: a parse error returns a "discarded" value, but we want the
  // position, so parse with exceptions and translate the one type nlohmann throws here.
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& error) {
    std::string detail = error.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix: our own origin says it.
    if (const size_t close = detail.find("] ");
        detail.rfind("[json.", 0) == 0 && close != std::string::npos) {
      detail.erase(0, close + 2);
    }
    fail(origin, where + ": not valid JSON (" + detail + ")");
  }
}

std::string json_type_name(const nlohmann::json& value) {
  if (value.is_number_integer()) return "integer";  // includes unsigned
  if (value.is_number_float()) return "float";
  if (value.is_string()) return "string";
  if (value.is_boolean()) return "boolean";
  if (value.is_array()) return "array";
  if (value.is_object()) return "object";
  if (value.is_null()) return "null";
  return value.type_name();
}

std::string quote_name(std::string_view name) {
  constexpr size_t max_shown = 200;
  std::string out = "'";
  size_t shown = 0;
  for (const char c : name) {
    if (shown++ == max_shown) {
      out += "...";
      break;
    }
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out.push_back(c);
    }
  }
  out += "'";
  return out;
}

std::optional<uint64_t> checked_numel(const std::vector<int64_t>& shape) {
  bool overflow = false;
  uint64_t count = 1;
  for (const int64_t dim : shape) {
    if (dim < 0) return std::nullopt;
    if (dim == 0) return 0;
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(dim), &count)) overflow = true;
  }
  if (overflow || count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return std::nullopt;
  }
  return count;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

MappedFile map_input_file(const fs::path& path, std::string_view origin) {
  try {
    return MappedFile(path);
  } catch (const Error& error) {
    const std::string message = error.what();
    const std::string prefix = "[" + error.origin() + "] ";
    fail(origin, message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message);
  }
}

}  // namespace ll
