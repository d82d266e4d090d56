// Errors: one exception type that says where it came from and what is wrong.
// The message reads "[origin] what", e.g.
//   "[safetensors] model.safetensors: tensor 'lm_head.weight' ends at byte 9,100,000 but ..."
// The CLI catches it in main, prints the one line and exits non-zero.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace ll {

class Error : public std::runtime_error {
 public:
  Error(std::string_view origin, std::string_view what);
  const std::string& origin() const { return origin_; }

 private:
  std::string origin_;
};

// Throws ll::Error("[origin] what").
[[noreturn]] void fail(std::string_view origin, std::string_view what);

// ll::Error's message without its "[origin] " prefix, to re-raise it under another origin.
std::string without_origin(const Error& error);

// Checks a condition on untrusted input; throws ll::Error when it does not hold.
inline void check(bool ok, std::string_view origin, std::string_view what) {
  if (!ok) fail(origin, what);
}

}  // namespace ll
