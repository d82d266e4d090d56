// See stop_flags.h.
#include "app/stop_flags.h"

#include <CLI/CLI.hpp>

namespace ll {

void add_stop_flag(CLI::App& cmd, std::vector<std::string>& stop_strings) {
  cmd.add_option("--stop", stop_strings,
                 "Also stop an answer once its text contains this string; the text is cut "
                 "before it (repeatable)")
      ->allow_extra_args(false);
}

}  // namespace ll
