// The part of the restricted unpickler (torch_pickle.h) that knows torch: which globals and
// opcodes are allowed, and what REDUCE of an allowed global and BINPERSID of a storage id
// build. Nothing is imported or called: each allowed call is interpreted here.
#pragma once

#include <cstdint>
#include <string>

#include "formats/torch_pickle.h"

namespace ll {

// What is wrong with the input; the unpickler adds the file and byte position.
struct PickleProblem {
  std::string what;
};

bool pickle_global_allowed(const std::string& name);  // "module.name"
std::string pickle_opcode_name(uint8_t op);  // pickletools' name of a refused opcode, or ""

// REDUCE: collections.OrderedDict() -> dict, _rebuild_tensor_v2(...) -> tensor,
// _rebuild_parameter(tensor, ...) -> that tensor; anything else throws PickleProblem.
PickleRef pickle_reduce(const PickleValue& callable, const PickleValue& args);
// BINPERSID: ('storage', torch.<Type>Storage, key, location, numel) -> a storage.
PickleRef pickle_persistent_load(const PickleValue& pid);

}  // namespace ll
