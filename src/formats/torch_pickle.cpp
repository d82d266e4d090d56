// See torch_pickle.h. Opcode values and meanings follow the pickle protocol as CPython's
// pickletools documents it; the interpreter below is ours and knows only what is listed there.
#include "formats/torch_pickle.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "core/error.h"
#include "core/text.h"
#include "formats/input_checks.h"
#include "formats/torch_pickle_calls.h"

namespace ll {
namespace {

constexpr int kMaxDepth = 64;

enum Op : uint8_t {
  kMark = '(',
  kStop = '.',
  kPop = '0',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kNone = 'N',
  kBinPersId = 'Q',
  kReduce = 'R',
  kBinString = 'T',
  kShortBinString = 'U',
  kBinUnicode = 'X',
  kAppend = 'a',
  kBuild = 'b',
  kGlobal = 'c',
  kDict = 'd',
  kEmptyDict = '}',
  kAppends = 'e',
  kBinGet = 'h',
  kLongBinGet = 'j',
  kList = 'l',
  kEmptyList = ']',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kTuple = 't',
  kEmptyTuple = ')',
  kSetItems = 'u',
  kBinFloat = 'G',
  kBinBytes = 'B',
  kShortBinBytes = 'C',
  kProto = 0x80,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
  kLong4 = 0x8b,
  kShortBinUnicode = 0x8c,
  kBinUnicode8 = 0x8d,
  kBinBytes8 = 0x8e,
  kStackGlobal = 0x93,
  kMemoize = 0x94,
  kFrame = 0x95,
};

class Unpickler {
 public:
  Unpickler(std::span<const std::byte> bytes, std::string_view origin, const std::string& where)
      : bytes_(bytes), origin_(origin), where_(where) {}

  PickleRef run() {
    while (true) {
      op_at_ = pos_;
      const uint8_t op = u8();
      if (op == kStop) break;
      step(op);
    }
    if (!marks_.empty()) fail_here("STOP with an open MARK");
    if (stack_.size() != 1) {
      fail_here("STOP leaves " + std::to_string(stack_.size()) + " values on the stack, not one");
    }
    return stack_.back();
  }

 private:
  [[noreturn]] void fail_here(const std::string& what) const {
    fail(origin_, where_ + ": byte " + format_count(op_at_) + ": " + what);
  }

  const std::byte* take(uint64_t n) {
    if (n > bytes_.size() - pos_) {
      fail_here("needs " + format_count(n) + " more bytes, the pickle has " +
                format_count(bytes_.size() - pos_) + " (truncated?)");
    }
    const std::byte* at = bytes_.data() + pos_;
    pos_ += n;
    return at;
  }
  uint64_t le(int n) {
    const std::byte* at = take(static_cast<uint64_t>(n));
    uint64_t value = 0;
    for (int i = n - 1; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(at[i]);
    return value;
  }
  uint8_t u8() { return static_cast<uint8_t>(le(1)); }

  std::string text(uint64_t n) {
    const std::byte* at = take(n);
    return std::string(reinterpret_cast<const char*>(at), n);
  }
  std::string line() {
    const size_t start = pos_;
    while (pos_ < bytes_.size() && bytes_[pos_] != std::byte{'\n'}) ++pos_;
    if (pos_ == bytes_.size()) fail_here("GLOBAL name has no end of line (truncated?)");
    ++pos_;
    return std::string(reinterpret_cast<const char*>(bytes_.data() + start), pos_ - 1 - start);
  }

  static PickleRef make(PickleKind kind) {
    auto value = std::make_shared<PickleValue>();
    value->kind = kind;
    return value;
  }
  static PickleRef make_int(int64_t v) {
    PickleRef value = make(PickleKind::Int);
    value->integer = v;
    return value;
  }
  static PickleRef make_text(PickleKind kind, std::string s) {
    PickleRef value = make(kind);
    value->text = std::move(s);
    return value;
  }

  void push(PickleRef value) { stack_.push_back(std::move(value)); }
  PickleRef pop(const char* op) {
    if (stack_.size() <= floor()) fail_here(std::string(op) + " on an empty stack");
    PickleRef value = std::move(stack_.back());
    stack_.pop_back();
    return value;
  }
  PickleRef& top(const char* op) {
    if (stack_.size() <= floor()) fail_here(std::string(op) + " on an empty stack");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<PickleRef> pop_to_mark(const char* op) {
    if (marks_.empty()) fail_here(std::string(op) + " without a MARK");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<PickleRef> items(std::make_move_iterator(stack_.begin() + static_cast<long>(mark)),
                                 std::make_move_iterator(stack_.end()));
    stack_.resize(mark);
    return items;
  }

  // Puts `child` into `parent` (a container being built): checks nesting and freezes it.
  void adopt(PickleValue& parent, PickleValue& child) {
    if (&parent == &child) fail_here("a container put inside itself (recursive data is not read)");
    if (child.depth + 1 > kMaxDepth) {
      fail_here("containers nest more than " + std::to_string(kMaxDepth) + " deep");
    }
    parent.depth = std::max(parent.depth, child.depth + 1);
    child.frozen = true;
  }
  void mutable_check(const PickleValue& target, const char* op) {
    if (target.frozen) {
      fail_here(std::string(op) +
                " changes a container already put inside another one "
                "(recursive data is not read)");
    }
  }
  PickleRef make_tuple(std::vector<PickleRef> items) {
    PickleRef tuple = make(PickleKind::Tuple);
    for (PickleRef& item : items) adopt(*tuple, *item);
    tuple->items = std::move(items);
    return tuple;
  }
  void append(PickleValue& list, std::vector<PickleRef> items, const char* op) {
    if (list.kind != PickleKind::List) {
      fail_here(std::string(op) + " on a " + std::string(pickle_kind_name(list.kind)) +
                ", not a list");
    }
    mutable_check(list, op);
    for (PickleRef& item : items) {
      adopt(list, *item);
      list.items.push_back(std::move(item));
    }
  }
  void set_items(PickleValue& dict, std::vector<PickleRef> items, const char* op) {
    if (dict.kind != PickleKind::Dict) {
      fail_here(std::string(op) + " on a " + std::string(pickle_kind_name(dict.kind)) +
                ", not a dict");
    }
    mutable_check(dict, op);
    if (items.size() % 2 != 0) fail_here(std::string(op) + " with an odd number of items");
    for (size_t i = 0; i < items.size(); i += 2) {
      adopt(dict, *items[i]);
      adopt(dict, *items[i + 1]);
      dict.entries.emplace_back(std::move(items[i]), std::move(items[i + 1]));
    }
  }

  // Runs an interpretation of torch_pickle_calls.h, giving its problem this opcode's position.
  template <typename Body>
  PickleRef guarded(Body body) {
    try {
      return body();
    } catch (const PickleProblem& problem) {
      fail_here(problem.what);
    }
  }

  void global(const std::string& module, const std::string& name) {
    const std::string full = module + "." + name;
    if (!pickle_global_allowed(full)) {
      fail_here("refuses global " + quote_name(full) +
                " (only tensors, storages and dicts are read; no code is run)");
    }
    push(make_text(PickleKind::Global, full));
  }

  void step(uint8_t op) {
    switch (op) {
      case kProto: {
        const uint8_t version = u8();
        if (version < 2 || version > 5) {
          fail_here("pickle protocol " + std::to_string(version) + " is not read (2 to 5 are)");
        }
        return;
      }
      case kFrame:
        le(8);
        return;  // a length hint only
      case kMark:
        marks_.push_back(stack_.size());
        return;
      case kPop:
        pop("POP");
        return;
      case kBinInt:
        push(make_int(static_cast<int32_t>(le(4))));
        return;
      case kBinInt1:
        push(make_int(static_cast<int64_t>(le(1))));
        return;
      case kBinInt2:
        push(make_int(static_cast<int64_t>(le(2))));
        return;
      case kLong1:
      case kLong4: {
        const uint64_t n = op == kLong1 ? le(1) : le(4);
        if (n > 8) fail_here("integer of " + format_count(n) + " bytes does not fit in 64 bits");
        uint64_t bits = n ? le(static_cast<int>(n)) : 0;
        if (n > 0 && n < 8 && (bits >> (8 * n - 1)) & 1u) bits |= ~uint64_t{0} << (8 * n);
        push(make_int(static_cast<int64_t>(bits)));
        return;
      }
      case kBinFloat: {
        const std::byte* at = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<uint8_t>(at[i]);  // big-endian
        PickleRef value = make(PickleKind::Float);
        value->real = std::bit_cast<double>(bits);
        push(value);
        return;
      }
      case kNone:
        push(make(PickleKind::None));
        return;
      case kNewTrue:
      case kNewFalse: {
        PickleRef value = make(PickleKind::Bool);
        value->boolean = op == kNewTrue;
        push(value);
        return;
      }
      case kShortBinUnicode:
      case kShortBinString:
        push(make_text(PickleKind::String, text(le(1))));
        return;
      case kBinUnicode:
        push(make_text(PickleKind::String, text(le(4))));
        return;
      case kBinUnicode8:
        push(make_text(PickleKind::String, text(le(8))));
        return;
      case kBinString: {
        const auto n = static_cast<int32_t>(le(4));
        if (n < 0) fail_here("BINSTRING with a negative length");
        push(make_text(PickleKind::String, text(static_cast<uint64_t>(n))));
        return;
      }
      case kShortBinBytes:
        push(make_text(PickleKind::Bytes, text(le(1))));
        return;
      case kBinBytes:
        push(make_text(PickleKind::Bytes, text(le(4))));
        return;
      case kBinBytes8:
        push(make_text(PickleKind::Bytes, text(le(8))));
        return;
      case kEmptyTuple:
        push(make(PickleKind::Tuple));
        return;
      case kTuple:
        push(make_tuple(pop_to_mark("TUPLE")));
        return;
      case kTuple1:
      case kTuple2:
      case kTuple3: {
        const size_t n = static_cast<size_t>(op - kTuple1) + 1;
        std::vector<PickleRef> items(n);
        for (size_t i = n; i-- > 0;) items[i] = pop("TUPLEn");
        push(make_tuple(std::move(items)));
        return;
      }
      case kEmptyList:
        push(make(PickleKind::List));
        return;
      case kList: {
        PickleRef list = make(PickleKind::List);
        append(*list, pop_to_mark("LIST"), "LIST");
        push(list);
        return;
      }
      case kAppend: {
        PickleRef item = pop("APPEND");
        append(*top("APPEND"), {std::move(item)}, "APPEND");
        return;
      }
      case kAppends: {
        std::vector<PickleRef> items = pop_to_mark("APPENDS");
        append(*top("APPENDS"), std::move(items), "APPENDS");
        return;
      }
      case kEmptyDict:
        push(make(PickleKind::Dict));
        return;
      case kDict: {
        PickleRef dict = make(PickleKind::Dict);
        set_items(*dict, pop_to_mark("DICT"), "DICT");
        push(dict);
        return;
      }
      case kSetItem: {
        PickleRef value = pop("SETITEM");
        PickleRef key = pop("SETITEM");
        set_items(*top("SETITEM"), {std::move(key), std::move(value)}, "SETITEM");
        return;
      }
      case kSetItems: {
        std::vector<PickleRef> items = pop_to_mark("SETITEMS");
        set_items(*top("SETITEMS"), std::move(items), "SETITEMS");
        return;
      }
      case kBinPut:
        memo_[static_cast<uint32_t>(le(1))] = top("BINPUT");
        return;
      case kLongBinPut:
        memo_[static_cast<uint32_t>(le(4))] = top("LONG_BINPUT");
        return;
      case kMemoize:
        memo_[static_cast<uint32_t>(memo_.size())] = top("MEMOIZE");
        return;
      case kBinGet:
      case kLongBinGet: {
        const auto index = static_cast<uint32_t>(op == kBinGet ? le(1) : le(4));
        const auto it = memo_.find(index);
        if (it == memo_.end())
          fail_here("memo entry " + std::to_string(index) + " was never stored");
        push(it->second);
        return;
      }
      case kGlobal: {
        const std::string module = line();
        const std::string name = line();
        global(module, name);
        return;
      }
      case kStackGlobal: {
        const PickleRef name = pop("STACK_GLOBAL");
        const PickleRef module = pop("STACK_GLOBAL");
        if (name->kind != PickleKind::String || module->kind != PickleKind::String) {
          fail_here("STACK_GLOBAL needs two strings");
        }
        global(module->text, name->text);
        return;
      }
      case kReduce: {
        const PickleRef args = pop("REDUCE");
        const PickleRef callable = pop("REDUCE");
        push(guarded([&] { return pickle_reduce(*callable, *args); }));
        return;
      }
      case kBuild: {
        const PickleRef state = pop("BUILD");
        const PickleValue& target = *top("BUILD");
        // OrderedDict's state is its __dict__ (state_dict()'s _metadata): not needed.
        if (target.kind != PickleKind::Dict ||
            (state->kind != PickleKind::Dict && state->kind != PickleKind::None)) {
          fail_here("BUILD sets the state of a " + std::string(pickle_kind_name(target.kind)) +
                    "; only a dict's attributes are accepted (and ignored)");
        }
        return;
      }
      case kBinPersId: {
        const PickleRef pid = pop("BINPERSID");
        push(guarded([&] { return pickle_persistent_load(*pid); }));
        return;
      }
      default: {
        const std::string name = pickle_opcode_name(op);
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail_here("opcode " + std::string(hex) + (name.empty() ? "" : " (" + name + ")") +
                  " is not allowed (only what tensors, storages and dicts need is read)");
      }
    }
  }

  std::span<const std::byte> bytes_;
  std::string_view origin_;
  const std::string& where_;
  size_t pos_ = 0;
  size_t op_at_ = 0;
  std::vector<PickleRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, PickleRef> memo_;
};

}  // namespace

std::string_view pickle_kind_name(PickleKind kind) {
  switch (kind) {
    case PickleKind::None:
      return "None";
    case PickleKind::Bool:
      return "bool";
    case PickleKind::Int:
      return "int";
    case PickleKind::Float:
      return "float";
    case PickleKind::String:
      return "str";
    case PickleKind::Bytes:
      return "bytes";
    case PickleKind::Tuple:
      return "tuple";
    case PickleKind::List:
      return "list";
    case PickleKind::Dict:
      return "dict";
    case PickleKind::Global:
      return "global";
    case PickleKind::Storage:
      return "storage";
    case PickleKind::Tensor:
      return "tensor";
  }
  return "?";
}

const PickleValue* PickleValue::get(std::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k->kind == PickleKind::String && k->text == key) return v.get();
  }
  return nullptr;
}

PickleRef read_pickle(std::span<const std::byte> bytes, std::string_view origin,
                      const std::string& where) {
  return Unpickler(bytes, origin, where).run();
}

}  // namespace ll
