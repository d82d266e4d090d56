// The version of llama-lora, as `--version` prints it and the run files record it.
#pragma once

namespace ll {

inline constexpr const char* kLlamaLoraVersion = "0.1.0";

}  // namespace ll
