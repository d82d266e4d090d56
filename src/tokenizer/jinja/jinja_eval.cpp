// Renders a parsed template: statements write into the output, expressions evaluate to Values.
// Scoping follows Jinja: a `for` body is its own scope, fresh for each iteration (a `set`
// inside it is gone in the next iteration and after the loop; namespace() objects carry state
// out), `if` is not. Every statement and expression is a step; steps, output bytes and macro
// call depth are bounded (RenderLimits).
#include <ctime>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/jinja/jinja.h"
#include "tokenizer/jinja/jinja_builtins.h"

namespace ll::jinja {

namespace {

// An error that already names its position: passes through the per-node handlers unchanged.
class PositionedError : public std::runtime_error {
 public:
  PositionedError(size_t offset_, const std::string& what_)
      : std::runtime_error(what_), offset(offset_) {}
  size_t offset;
};

enum class Flow { Normal, Break, Continue };

class Renderer {
 public:
  Renderer(const SourceMap& map, const RenderOptions& options) : map_(map), options_(options) {}

  std::string render(const Program& program, const nlohmann::ordered_json& variables) {
    frames_.emplace_back();
    install_globals();
    for (const auto& [key, value] : variables.items()) frames_[0][key] = Value::from_json(value);
    frames_.emplace_back();  // the template's own `set`s
    std::string out;
    try {
      exec_body(program.body, out);
    } catch (const PositionedError& error) {
      map_.fail_at(error.offset, error.what());
    }
    return out;
  }

 private:
  using Frame = std::unordered_map<std::string, Value>;

  [[noreturn]] void fail_at(size_t offset, const std::string& what) {
    throw PositionedError(offset, what);
  }

  void step(size_t offset) {
    if (++steps_ > options_.limits.max_steps) {
      fail_at(offset, "render stopped after " + std::to_string(options_.limits.max_steps) +
                          " steps (a loop that does not end?)");
    }
  }

  void append(std::string& out, const std::string& text, size_t offset) {
    out += text;
    if (out.size() > options_.limits.max_output_bytes) {
      fail_at(offset, "render output passed " + std::to_string(options_.limits.max_output_bytes) +
                          " bytes");
    }
  }

  Value lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      const auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    return Value::undefined(name);
  }

  void install_globals();

  // --- statements ---
  Flow exec_body(const Body& body, std::string& out) {
    for (const auto& stmt : body) {
      const Flow flow = exec(*stmt, out);
      if (flow != Flow::Normal) return flow;
    }
    return Flow::Normal;
  }

  Flow exec(const Stmt& s, std::string& out) {
    step(s.offset);
    switch (s.kind) {
      case StmtKind::Text:
        append(out, s.text, s.offset);
        return Flow::Normal;
      case StmtKind::Output:
        append(out, to_str(eval(*s.expr)), s.offset);
        return Flow::Normal;
      case StmtKind::If:
        for (size_t i = 0; i < s.bodies.size(); ++i) {
          if (i == s.conditions.size() || truthy(eval(*s.conditions[i])))
            return exec_body(s.bodies[i], out);
        }
        return Flow::Normal;
      case StmtKind::For:
        return exec_for(s, out);
      case StmtKind::Set:
        assign(s, eval(*s.expr));
        return Flow::Normal;
      case StmtKind::SetBlock: {
        std::string captured;
        exec_body(s.bodies[0], captured);
        assign(s, Value::from(std::move(captured)));
        return Flow::Normal;
      }
      case StmtKind::Macro:
        frames_.back()[s.name] = make_macro(s);
        return Flow::Normal;
      case StmtKind::CallBlock: {
        frames_.emplace_back();
        const Stmt* block = &s;
        frames_.back()["caller"] = Value::from(Callable([this, block](Args&) {
          std::string text;
          exec_body(block->bodies[0], text);
          return Value::from(std::move(text));
        }));
        const Value result = eval(*s.expr);
        frames_.pop_back();
        append(out, to_str(result), s.offset);
        return Flow::Normal;
      }
      case StmtKind::Break:
        return Flow::Break;
      case StmtKind::Continue:
        return Flow::Continue;
    }
    return Flow::Normal;
  }

  void assign(const Stmt& s, const Value& value) {
    if (s.attribute_target) {
      const Value target = lookup(s.targets[0]);
      if (target.kind != Kind::Namespace) {
        fail_at(s.offset, "cannot assign attribute '" + s.targets[1] + "' on '" + s.targets[0] +
                              "', which is not a namespace()");
      }
      for (auto& entry : *target.dict) {
        if (entry.first == s.targets[1]) {
          entry.second = value;
          return;
        }
      }
      target.dict->emplace_back(s.targets[1], value);
      return;
    }
    bind_targets(s.targets, value, s.offset);
  }

  void bind_targets(const std::vector<std::string>& targets, const Value& value, size_t offset) {
    if (targets.size() == 1) {
      frames_.back()[targets[0]] = value;
      return;
    }
    Items items;
    try {
      items = iterate(value);
    } catch (const EvalError& error) {
      fail_at(offset, std::string("cannot unpack: ") + error.what());
    }
    if (items.size() != targets.size()) {
      fail_at(offset, "cannot unpack " + std::to_string(items.size()) + " values into " +
                          std::to_string(targets.size()) + " names");
    }
    for (size_t i = 0; i < targets.size(); ++i) frames_.back()[targets[i]] = items[i];
  }

  Flow exec_for(const Stmt& s, std::string& out) {
    const Value iterable = eval(*s.expr);
    Items all;
    try {
      all = iterate(iterable);
    } catch (const EvalError& error) {
      fail_at(s.expr->offset, error.what());
    }
    frames_.emplace_back();
    Items items;
    if (!s.conditions.empty()) {
      // `for x in xs if c`: the filter sees x, and loop.length counts what passes.
      for (const Value& item : all) {
        bind_targets(s.targets, item, s.offset);
        if (truthy(eval(*s.conditions[0]))) items.push_back(item);
      }
    } else {
      items = std::move(all);
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      step(s.offset);
      const size_t u = static_cast<size_t>(i);
      // Each iteration is a fresh scope: a `set` in one is gone in the next, as in Jinja.
      frames_.back().clear();
      bind_targets(s.targets, items[u], s.offset);
      Entries loop = {
          {"index0", Value::from(i)},
          {"index", Value::from(i + 1)},
          {"revindex0", Value::from(n - i - 1)},
          {"revindex", Value::from(n - i)},
          {"first", Value::from(i == 0)},
          {"last", Value::from(i == n - 1)},
          {"length", Value::from(n)},
          {"depth", Value::from(int64_t{1})},
          {"depth0", Value::from(int64_t{0})},
          {"previtem", i > 0 ? items[u - 1] : Value::undefined("previtem")},
          {"nextitem", i + 1 < n ? items[u + 1] : Value::undefined("nextitem")},
      };
      loop.emplace_back("cycle", Value::from(Callable([i](Args& a) {
                          if (a.positional.empty())
                            throw EvalError("loop.cycle needs at least one value");
                          return a.positional[static_cast<size_t>(i) % a.positional.size()];
                        })));
      frames_.back()["loop"] = Value::from(std::move(loop), Kind::Dict);
      if (exec_body(s.bodies[0], out) == Flow::Break) break;
    }
    frames_.pop_back();
    if (n == 0 && s.bodies.size() > 1) return exec_body(s.bodies[1], out);
    return Flow::Normal;
  }

  Value make_macro(const Stmt& s) {
    const Stmt* macro = &s;
    return Value::from(Callable([this, macro](Args& args) {
      if (++call_depth_ > options_.limits.max_call_depth) {
        fail_at(macro->offset, "macro '" + macro->name + "' nests deeper than " +
                                   std::to_string(options_.limits.max_call_depth) + " calls");
      }
      if (args.positional.size() > macro->targets.size()) {
        throw EvalError("macro '" + macro->name + "' takes " +
                        std::to_string(macro->targets.size()) + " arguments, " +
                        std::to_string(args.positional.size()) + " given");
      }
      Frame frame;
      for (size_t i = 0; i < macro->targets.size(); ++i) {
        Value v = argument(args, i, macro->targets[i]);
        if (v.is_undefined() && macro->defaults[i]) v = eval(*macro->defaults[i]);
        frame[macro->targets[i]] = v;
      }
      const Value caller = lookup("caller");
      frames_.push_back(std::move(frame));
      if (!caller.is_undefined()) frames_.back()["caller"] = caller;
      std::string text;
      exec_body(macro->bodies[0], text);
      frames_.pop_back();
      --call_depth_;
      return Value::from(std::move(text));
    }));
  }

  // --- expressions ---
  Value eval(const Expr& e) {
    step(e.offset);
    try {
      return eval_node(e);
    } catch (const EvalError& error) {
      fail_at(e.offset, error.what());
    }
  }

  Args eval_args(const Expr& e, size_t first) {
    Args args;
    for (size_t i = first; i < e.items.size(); ++i) args.positional.push_back(eval(*e.items[i]));
    for (const auto& [key, value] : e.keywords) args.keyword.emplace_back(key, eval(*value));
    return args;
  }

  Value eval_node(const Expr& e) {
    switch (e.kind) {
      case ExprKind::Literal:
        return e.value;
      case ExprKind::Name:
        return lookup(e.name);
      case ExprKind::List:
      case ExprKind::Tuple: {
        Items items;
        for (const auto& item : e.items) items.push_back(eval(*item));
        return e.kind == ExprKind::Tuple ? Value::tuple_of(std::move(items))
                                         : Value::from(std::move(items));
      }
      case ExprKind::Dict: {
        Entries items;
        for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
          const Value key = eval(*e.items[i]);
          if (!key.is_string()) throw EvalError("dict keys must be strings here");
          Value value = eval(*e.items[i + 1]);
          auto it = std::find_if(items.begin(), items.end(),
                                 [&](const auto& p) { return p.first == key.text; });
          if (it != items.end()) {
            it->second = std::move(value);
          } else {
            items.emplace_back(key.text, std::move(value));
          }
        }
        return Value::from(std::move(items));
      }
      case ExprKind::Attribute:
        return get_attribute(eval(*e.items[0]), e.name);
      case ExprKind::Item: {
        const Value object = eval(*e.items[0]);
        return get_item(object, eval(*e.items[1]));
      }
      case ExprKind::Slice: {
        const Value object = eval(*e.items[0]);
        const auto part = [&](size_t i) {
          return e.items[i] ? eval(*e.items[i]) : Value::undefined();
        };
        return get_slice(object, part(1), part(2), part(3));
      }
      case ExprKind::Call: {
        const Value callee = eval(*e.items[0]);
        Args args = eval_args(e, 1);
        require_defined(callee);
        if (callee.kind != Kind::Function)
          throw EvalError(std::string("'") + type_name(callee) + "' object is not callable");
        return (*callee.function)(args);
      }
      case ExprKind::Filter: {
        const Value input = eval(*e.items[0]);
        Args args = eval_args(e, 1);
        return apply_filter(e.name, input, args);
      }
      case ExprKind::Test: {
        const Value input = eval(*e.items[0]);
        Args args = eval_args(e, 1);
        return Value::from(apply_test(e.name, input, args) != e.negated);
      }
      case ExprKind::Not:
        return Value::from(!truthy(eval(*e.items[0])));
      case ExprKind::Negate: {
        const Value v = eval(*e.items[0]);
        if (v.kind == Kind::Int || v.kind == Kind::Bool)
          return Value::from(-(v.kind == Kind::Bool ? int64_t{v.boolean} : v.integer));
        if (v.kind == Kind::Float) return Value::from(-v.real);
        require_defined(v);
        throw EvalError(std::string("bad operand type for unary -: '") + kind_name(v.kind) + "'");
      }
      case ExprKind::Binary: {
        const Value left = eval(*e.items[0]);
        const Value right = eval(*e.items[1]);
        return apply_binary(e.op, left, right);
      }
      case ExprKind::And: {
        Value left = eval(*e.items[0]);
        return truthy(left) ? eval(*e.items[1]) : left;
      }
      case ExprKind::Or: {
        Value left = eval(*e.items[0]);
        return truthy(left) ? left : eval(*e.items[1]);
      }
      case ExprKind::Conditional:
        if (truthy(eval(*e.items[0]))) return eval(*e.items[1]);
        return e.items[2] ? eval(*e.items[2]) : Value::undefined();
    }
    return Value::undefined();
  }

  const SourceMap& map_;
  const RenderOptions& options_;
  std::vector<Frame>
      frames_;  // [0] globals and the caller's variables, [1] the template's, then loops/macros
  size_t steps_ = 0;
  int call_depth_ = 0;
};

void Renderer::install_globals() {
  Frame& g = frames_[0];
  g["raise_exception"] = Value::from(Callable([](Args& a) -> Value {
    throw EvalError("template raised: " +
                    (a.positional.empty() ? std::string() : to_str(a.positional[0])));
  }));
  g["namespace"] = Value::from(Callable([](Args& a) {
    Entries attributes;
    for (const Value& p : a.positional) {
      if (!p.is_mapping()) throw EvalError("namespace() takes keyword arguments or a dict");
      attributes.insert(attributes.end(), p.dict->begin(), p.dict->end());
    }
    attributes.insert(attributes.end(), a.keyword.begin(), a.keyword.end());
    return Value::from(std::move(attributes), Kind::Namespace);
  }));
  g["dict"] = Value::from(Callable([](Args& a) {
    Entries items;
    for (const Value& p : a.positional) {
      if (p.kind != Kind::Dict) throw EvalError("dict() takes keyword arguments or a dict");
      items.insert(items.end(), p.dict->begin(), p.dict->end());
    }
    items.insert(items.end(), a.keyword.begin(), a.keyword.end());
    return Value::from(std::move(items));
  }));
  g["range"] = Value::from(Callable([](Args& a) {
    std::vector<int64_t> n;
    for (const Value& p : a.positional) {
      if (p.kind != Kind::Int) throw EvalError("range() takes integers");
      n.push_back(p.integer);
    }
    if (n.empty() || n.size() > 3) throw EvalError("range() takes 1 to 3 integers");
    const int64_t start = n.size() == 1 ? 0 : n[0];
    const int64_t stop = n.size() == 1 ? n[0] : n[1];
    const int64_t by = n.size() == 3 ? n[2] : 1;
    if (by == 0) throw EvalError("range() step must not be zero");
    constexpr int64_t kMaxRange = 100000;  // jinja2's sandbox limit
    Items out;
    for (int64_t i = start; by > 0 ? i < stop : i > stop; i += by) {
      if (static_cast<int64_t>(out.size()) >= kMaxRange)
        throw EvalError("range() is too big (more than 100000 items)");
      out.push_back(Value::from(i));
    }
    return Value::from(std::move(out));
  }));
  const std::optional<std::tm> fixed = options_.now;
  g["strftime_now"] = Value::from(Callable([fixed](Args& a) {
    if (a.positional.empty() || !a.positional[0].is_string())
      throw EvalError("strftime_now needs a format string");
    std::tm now{};
    if (fixed) {
      // timegm fills in the weekday and day of the year (%A, %j) from the date.
      now = *fixed;
      const std::time_t t = timegm(&now);
      gmtime_r(&t, &now);
    } else {
      const std::time_t t = std::time(nullptr);
      localtime_r(&t, &now);
    }
    char buf[512];
    const size_t n = std::strftime(buf, sizeof(buf), a.positional[0].text.c_str(), &now);
    return Value::from(std::string(buf, n));
  }));
}

}  // namespace

Template::Template(std::string source, std::string name) : name_(std::move(name)) {
  // Jinja reads "\r\n" and "\r" as "\n" and drops one trailing newline of the template.
  source_.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      source_ += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      source_ += source[i];
    }
  }
  if (!source_.empty() && source_.back() == '\n') source_.pop_back();
  const SourceMap map(name_, source_);
  program_ = std::make_unique<Program>(parse_tokens(tokenize(source_, map), map));
}

Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const nlohmann::ordered_json& variables,
                             const RenderOptions& options) const {
  check(variables.is_object(), "jinja", name_ + ": the variables must be a JSON object");
  const SourceMap map(name_, source_);
  return Renderer(map, options).render(*program_, variables);
}

}  // namespace ll::jinja
