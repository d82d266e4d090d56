// See torch_pickle_calls.h.
#include "formats/torch_pickle_calls.h"

#include "formats/input_checks.h"

namespace ll {
namespace {

[[noreturn]] void problem(const std::string& what) {
  throw PickleProblem{what};
}

PickleRef make_value(PickleKind kind) {
  auto value = std::make_shared<PickleValue>();
  value->kind = kind;
  return value;
}

std::vector<int64_t> int_tuple(const PickleValue& value, const char* what) {
  if (value.kind != PickleKind::Tuple) {
    problem(std::string("_rebuild_tensor_v2: ") + what + " is a " +
            std::string(pickle_kind_name(value.kind)) + ", not a tuple");
  }
  std::vector<int64_t> out;
  for (const PickleRef& item : value.items) {
    if (item->kind != PickleKind::Int || item->integer < 0) {
      problem(std::string("_rebuild_tensor_v2: ") + what + " holds a " +
              (item->kind == PickleKind::Int ? std::string("negative int")
                                             : std::string(pickle_kind_name(item->kind))));
    }
    out.push_back(item->integer);
  }
  return out;
}

}  // namespace

// Names of opcodes we refuse, for the error (pickletools' names).
std::string pickle_opcode_name(uint8_t op) {
  switch (op) {
    case 'i':
      return "INST";
    case 'o':
      return "OBJ";
    case 0x81:
      return "NEWOBJ";
    case 0x92:
      return "NEWOBJ_EX";
    case 0x82:
      return "EXT1";
    case 0x83:
      return "EXT2";
    case 0x84:
      return "EXT4";
    case 'P':
      return "PERSID";
    case 'I':
      return "INT";
    case 'L':
      return "LONG";
    case 'F':
      return "FLOAT";
    case 'S':
      return "STRING";
    case 'V':
      return "UNICODE";
    case 'p':
      return "PUT";
    case 'g':
      return "GET";
    case '2':
      return "DUP";
    case '1':
      return "POP_MARK";
    case 0x8f:
      return "EMPTY_SET";
    case 0x90:
      return "ADDITEMS";
    case 0x91:
      return "FROZENSET";
    case 0x96:
      return "BYTEARRAY8";
    case 0x97:
      return "NEXT_BUFFER";
    case 0x98:
      return "READONLY_BUFFER";
    default:
      return "";
  }
}

bool pickle_global_allowed(const std::string& name) {
  static const char* const kAllowed[] = {
      "torch._utils._rebuild_tensor_v2",
      "torch._utils._rebuild_parameter",
      "builtins.set",
      "__builtin__.set",
      "collections.OrderedDict",
      "torch.UntypedStorage",
      "torch.storage.UntypedStorage",
  };
  for (const char* allowed : kAllowed) {
    if (name == allowed) return true;
  }
  static const char* const kStorages[] = {
      "Float", "Half", "BFloat16", "Double", "Long", "Int", "Short", "Char", "Byte", "Bool",
  };
  for (const char* storage : kStorages) {
    if (name == std::string("torch.") + storage + "Storage") return true;
  }
  static const char* const kDtypes[] = {
      "float32", "float16", "bfloat16", "float64", "int64", "int32",
      "int16",   "int8",    "uint8",    "bool",    "float", "half",
  };
  for (const char* dtype : kDtypes) {
    if (name == std::string("torch.") + dtype) return true;
  }
  return false;
}

PickleRef pickle_persistent_load(const PickleValue& pid) {
  if (pid.kind != PickleKind::Tuple || pid.items.size() != 5 ||
      pid.items[0]->kind != PickleKind::String || pid.items[0]->text != "storage") {
    problem("persistent id is not ('storage', type, key, location, numel)");
  }
  const PickleValue& type = *pid.items[1];
  const PickleValue& key = *pid.items[2];
  const PickleValue& location = *pid.items[3];
  const PickleValue& numel = *pid.items[4];
  if (type.kind != PickleKind::Global || type.text.find("Storage") == std::string::npos ||
      key.kind != PickleKind::String || location.kind != PickleKind::String ||
      numel.kind != PickleKind::Int || numel.integer < 0) {
    problem("persistent id is not ('storage', torch.<Type>Storage, str, str, int >= 0)");
  }
  auto storage = std::make_shared<PickleStorage>();
  storage->type = type.text;
  storage->key = key.text;
  storage->location = location.text;
  storage->numel = numel.integer;
  PickleRef value = make_value(PickleKind::Storage);
  value->storage = std::move(storage);
  return value;
}

PickleRef pickle_reduce(const PickleValue& callable, const PickleValue& args) {
  if (callable.kind != PickleKind::Global) {
    problem("REDUCE calls a " + std::string(pickle_kind_name(callable.kind)) +
            ", not an allowed global");
  }
  if (args.kind != PickleKind::Tuple) problem("REDUCE arguments are not a tuple");
  const std::vector<PickleRef>& a = args.items;
  if (callable.text == "builtins.set" || callable.text == "__builtin__.set") {
    // set() or set([...]) (protocol 2 pickles a set so): read as a list of its items.
    PickleRef set = make_value(PickleKind::List);
    if (a.empty()) return set;
    if (a.size() != 1 || (a[0]->kind != PickleKind::List && a[0]->kind != PickleKind::Tuple)) {
      problem("set is only read called with no arguments or one list");
    }
    set->items = a[0]->items;  // already frozen inside the argument
    set->depth = a[0]->depth;
    return set;
  }
  if (callable.text == "collections.OrderedDict") {
    if (!a.empty()) problem("collections.OrderedDict is only read called with no arguments");
    return make_value(PickleKind::Dict);
  }
  if (callable.text == "torch._utils._rebuild_tensor_v2") {
    if (a.size() != 6 && a.size() != 7) {
      problem("_rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(a.size()));
    }
    if (a[0]->kind != PickleKind::Storage)
      problem("_rebuild_tensor_v2: argument 1 is not a storage");
    if (a[1]->kind != PickleKind::Int || a[1]->integer < 0) {
      problem("_rebuild_tensor_v2: storage offset is not an int >= 0");
    }
    auto tensor = std::make_shared<PickleTensor>();
    tensor->storage = a[0]->storage;
    tensor->storage_offset = a[1]->integer;
    tensor->shape = int_tuple(*a[2], "size");
    tensor->stride = int_tuple(*a[3], "stride");
    if (tensor->shape.size() != tensor->stride.size()) {
      problem("_rebuild_tensor_v2: size has " + std::to_string(tensor->shape.size()) +
              " dims but stride " + std::to_string(tensor->stride.size()));
    }
    PickleRef value = make_value(PickleKind::Tensor);
    value->tensor = std::move(tensor);
    return value;
  }
  if (callable.text == "torch._utils._rebuild_parameter") {
    if (a.size() != 3 || a[0]->kind != PickleKind::Tensor) {
      problem("_rebuild_parameter takes (tensor, requires_grad, hooks)");
    }
    PickleRef value = make_value(PickleKind::Tensor);
    value->tensor = a[0]->tensor;
    return value;
  }
  problem("global " + quote_name(callable.text) + " cannot be called");
}

}  // namespace ll
