// The --stop flag of the commands that generate (`generate`, `compare`, `eval`): stop strings
// on top of the stop ids every generation stops at (tools/stopping.h).
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace ll {

void add_stop_flag(CLI::App& cmd, std::vector<std::string>& stop_strings);

}  // namespace ll
