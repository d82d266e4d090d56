// A Jinja2 interpreter for chat templates, written for llama-lora: the subset of Jinja that
// real chat templates use, rendering string for string as transformers' apply_chat_template
// (jinja2's ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and loopcontrols,
// plus transformers' tojson, raise_exception, strftime_now and namespace). Checked against
// tests/fixtures/chat_template_renders.json (scripts/fixtures/render_chat_templates.py).
//
// Statements: if/elif/else, for (with else, a filter `if`, loop.*, break/continue), set (also
// `ns.attr` and `{% set x %}...{% endset %}`), macro/call, generation. Errors are ll::Error
// "[jinja] NAME:LINE:COL: what"; a template's own raise_exception(msg) reads
// "[jinja] NAME:LINE:COL: template raised: msg". A render stops with an error past
// RenderLimits (steps, output bytes, call depth), so no template loops or recurses forever.
#pragma once

#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace ll::jinja {

struct Program;

struct RenderLimits {
  size_t max_steps = 1'000'000;         // statements run + expressions evaluated (~1 s)
  size_t max_output_bytes = 64u << 20;  // the rendered text, and any one string built
  int max_call_depth = 100;             // nested macro calls
};

struct RenderOptions {
  // What strftime_now() reads as "now" (local time); none: the clock. Fixtures pin it.
  std::optional<std::tm> now;
  RenderLimits limits;
};

class Template {
 public:
  // Parses `source` as transformers does: "\r\n" and "\r" read as "\n", one trailing newline
  // dropped (keep_trailing_newline=False). `name` names the template in errors.
  Template(std::string source, std::string name);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with `variables` (a JSON object: messages, add_generation_prompt, bos_token, ...).
  // ordered_json: the templates print dicts and tojson them, so key order is part of the
  // output (a plain nlohmann::json would have sorted the keys already).
  std::string render(const nlohmann::ordered_json& variables,
                     const RenderOptions& options = {}) const;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::string source_;
  std::unique_ptr<Program> program_;
};

}  // namespace ll::jinja
