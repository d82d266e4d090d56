// A restricted unpickler for the data.pkl of a `torch.save` archive. It builds a tree of plain
// values (None, bool, int, float, str, bytes, tuple, list, dict) plus the three things a
// checkpoint needs: references to globals from a fixed allow-list, the storages named by
// persistent ids, and tensors rebuilt from them. It never imports or calls anything: the
// allowed "calls" are interpreted here, every other global is refused by name (e.g.
// "refuses global 'os.system'") before anything after it is read.
//
// Allowed globals:
//   torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, meta])
//   torch._utils._rebuild_parameter(tensor, requires_grad, hooks)  -> the tensor
//   collections.OrderedDict()                                       -> a dict
//   builtins.set() / set([...]) (__builtin__.set in protocol 2)      -> a list of the items
//   torch.<Type>Storage, torch.UntypedStorage (in persistent ids only)
//   torch.float32, torch.bfloat16, ... (dtype values, e.g. in metadata dicts)
// Opcodes: those of protocols 2 to 4 that these need (PROTO, FRAME, MARK, STOP, the int, float,
// string and bytes literals, None/True/False, tuple/list/dict construction, memo get/put,
// GLOBAL, STACK_GLOBAL, REDUCE, BUILD (state of a dict, ignored), BINPERSID). Any other opcode,
// e.g. INST, OBJ, NEWOBJ or EXT*, is refused naming it.
//
// Limits on hostile input: containers nest at most 64 deep and are frozen once put inside
// another one (so no cycles can be built), integers fit in 64 bits, every length is checked
// against the remaining bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ll {

enum class PickleKind {
  None,
  Bool,
  Int,
  Float,
  String,
  Bytes,
  Tuple,
  List,
  Dict,
  Global,
  Storage,
  Tensor
};

std::string_view pickle_kind_name(PickleKind kind);  // "None", "int", "tuple", "tensor", ...

// A storage named by a persistent id ('storage', torch.<Type>Storage, key, location, numel).
struct PickleStorage {
  std::string type;  // the global, e.g. "torch.FloatStorage"
  std::string key;   // the archive entry is <prefix>/data/<key>
  std::string location;
  int64_t numel = 0;
};

// _rebuild_tensor_v2's arguments: a strided view of a storage.
struct PickleTensor {
  std::shared_ptr<const PickleStorage> storage;
  int64_t storage_offset = 0;
  std::vector<int64_t> shape;
  std::vector<int64_t> stride;
};

struct PickleValue {
  PickleKind kind = PickleKind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  std::string text;                                 // String, Bytes; Global: "module.name"
  std::vector<std::shared_ptr<PickleValue>> items;  // Tuple, List
  std::vector<std::pair<std::shared_ptr<PickleValue>, std::shared_ptr<PickleValue>>>
      entries;                                   // Dict
  std::shared_ptr<const PickleStorage> storage;  // Storage
  std::shared_ptr<const PickleTensor> tensor;    // Tensor
  int depth = 0;                                 // nesting of containers below this value
  bool frozen = false;  // put inside another container: never changed again

  // A dict entry by string key, or nullptr.
  const PickleValue* get(std::string_view key) const;
};

using PickleRef = std::shared_ptr<PickleValue>;

// Unpickles `bytes`; errors read "[origin] WHERE: byte N: ..." (WHERE names the file/entry).
PickleRef read_pickle(std::span<const std::byte> bytes, std::string_view origin,
                      const std::string& where);

}  // namespace ll
