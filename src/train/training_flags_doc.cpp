// training_flags_markdown(): docs/FLAGS.md, written from the flag table (training_fields.h) so
// that the list of flags, their defaults and their status cannot drift from the code.
#include <algorithm>
#include <cctype>
#include <string>

#include "train/training_args.h"
#include "train/training_fields.h"

namespace ll {

namespace {

std::string_view origin_name(FlagOrigin origin) {
  switch (origin) {
    case FlagOrigin::Transformers:
      return "transformers";
    case FlagOrigin::Trl:
      return "TRL";
    case FlagOrigin::Peft:
      return "peft";
    case FlagOrigin::OptimumNeuron:
      return "optimum-neuron";
    case FlagOrigin::LlamaLora:
      return "llama-lora";
  }
  return "?";
}

std::string_view status_of(const Field& field) {
  if (field.origin == FlagOrigin::LlamaLora) return "llama-lora only";
  switch (field.support) {
    case FlagSupport::Works:
      return "works";
    case FlagSupport::Partly:
      return "partly: values refused";
    case FlagSupport::Differs:
      return "differs: see notes";
    case FlagSupport::NoEffect:
      return "accepted, no effect";
  }
  return "?";
}

// Text for one table cell: `|` would end it.
std::string cell(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

// "`--eval_strategy` (`--evaluation_strategy`)" from the name and CLI11's ",--a,--b" aliases.
std::string flag_names(const Field& field) {
  std::string names = "`--";
  names.append(field.name).append("`");
  std::string_view aliases = field.aliases;
  std::string others;
  while (!aliases.empty()) {
    aliases.remove_prefix(1);  // the comma
    const size_t end = std::min(aliases.find(','), aliases.size());
    if (!others.empty()) others.append(", ");
    others.append("`").append(aliases.substr(0, end)).append("`");
    aliases.remove_prefix(end);
  }
  if (!others.empty()) names.append(" (").append(others).append(")");
  return names;
}

}  // namespace

std::string training_flags_markdown() {
  const TrainingArgs defaults;
  std::string out =
      "# `llama-lora train` flags\n"
      "\n"
      "Generated from the flag table in `src/train/training_fields.cpp` by\n"
      "`training_flags_markdown()`; `tests/train/test_flags_doc.cpp` fails when this file\n"
      "differs from it. To rewrite it: `LL_WRITE_FLAGS_DOC=1 build/release/tests/test_train\n"
      "--gtest_filter='FlagsDoc.*'`.\n"
      "\n"
      "Flags are `--name VALUE` or `--name=VALUE`; the last of a repeated flag wins; booleans\n"
      "take `--flag` alone (true) or true/false, t/f, yes/no, y/n, 1/0, on/off in any case.\n"
      "Recipe files (`--recipe FILE.yaml|FILE.json`) take the same names as keys, without the\n"
      "dashes. Status:\n"
      "\n"
      "- **works**: does what the flag of that name does in its origin (notes say where the\n"
      "  default or a corner differs).\n"
      "- **partly: values refused**: the values listed work; any other is an error naming the\n"
      "  flag and the supported values, before anything is loaded (notes say why).\n"
      "- **differs: see notes**: accepted under that name with another meaning, which the\n"
      "  note gives.\n"
      "- **accepted, no effect**: launch scripts pass it; here it changes nothing, and the note\n"
      "  says why that is still what the flag means.\n"
      "- **llama-lora only**: not a Hugging Face flag.\n"
      "\n"
      "Any flag not listed here is refused by the parser (CLI11: `The following arguments\n"
      "were not expected: True --fp16` for `--fp16 True`), so no Hugging Face flag is silently\n"
      "ignored.\n";
  std::string_view group;
  const auto heading = [&](std::string_view name) {
    out += "\n## " + std::string(name) +
           "\n\n| flag | from | default | status | what it does; notes |\n"
           "| --- | --- | --- | --- | --- |\n";
  };
  for (const Field& field : training_fields()) {
    if (field.group != group) {
      group = field.group;
      heading(group);
      if (&field == &training_fields().front()) {
        out += "| `--recipe` | llama-lora | (none) | llama-lora only | " + cell(kRecipeHelp) +
               "; applied first, wherever it stands, so the other flags override it |\n";
      }
    }
    const std::string value = field_text(defaults, field);
    std::string text = std::string(field.help);
    if (!field.note.empty()) {
      std::string note(field.note);
      note[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(note[0])));
      text.append(". ").append(note);
    }
    std::string shown = "(none)";
    if (!value.empty()) shown = std::string("`").append(cell(value)).append("`");
    out.append("| ").append(flag_names(field)).append(" | ").append(origin_name(field.origin));
    out.append(" | ").append(shown).append(" | ").append(status_of(field));
    out.append(" | ").append(cell(text)).append(" |\n");
  }
  return out;
}

}  // namespace ll
