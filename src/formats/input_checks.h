// Helpers shared by the formats/ readers and writers for checking untrusted input
// (safetensors headers, index files, config.json): parse JSON without letting nlohmann's
// exceptions escape, name JSON types the way users think of them, quote names taken from a
// file so that an error message stays on one line, and multiply shapes without overflow.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/file.h"

namespace ll {

// Maps `path` read-only; a failure ("PATH: cannot open: ...") is thrown under `origin`, as
// every other error of the reader that asked.
MappedFile map_input_file(const fs::path& path, std::string_view origin);

// Parses `text`; on failure throws ll::Error("[origin] where: not valid JSON (...)").
nlohmann::json parse_json_text(std::string_view text, std::string_view origin,
                               const std::string& where);

// "integer", "float", "string", "boolean", "array", "object", "null".
std::string json_type_name(const nlohmann::json& value);

// 'name' in single quotes with control characters escaped and very long names cut, so a
// hostile name cannot break an error message over several lines or flood a terminal.
std::string quote_name(std::string_view name);

// The element count of `shape`, or nothing when a dim is negative or the product does not
// fit in int64. A shape with a zero dim has 0 elements whatever the other dims are.
std::optional<uint64_t> checked_numel(const std::vector<int64_t>& shape);

std::string shape_text(const std::vector<int64_t>& shape);  // "[2048, 512]"

}  // namespace ll
