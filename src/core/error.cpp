// See error.h.
#include "core/error.h"

namespace ll {

namespace {

std::string compose(std::string_view origin, std::string_view what) {
  std::string message;
  message.reserve(origin.size() + what.size() + 3);
  message.append("[").append(origin).append("] ").append(what);
  return message;
}

}  // namespace

Error::Error(std::string_view origin, std::string_view what)
    : std::runtime_error(compose(origin, what)), origin_(origin) {}

void fail(std::string_view origin, std::string_view what) {
  throw Error(origin, what);
}

std::string without_origin(const Error& error) {
  const std::string_view what = error.what();
  const size_t prefix = error.origin().size() + 3;
  return std::string(what.size() >= prefix ? what.substr(prefix) : what);
}

}  // namespace ll
