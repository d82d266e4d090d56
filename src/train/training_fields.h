// The table behind `llama-lora train`'s settings (internal to train/): one Field per setting,
// with its flag name, TrainingArgs member, --help text, where the name comes from and how far
// llama-lora supports it. The flags (training_args.cpp), recipe files (training_recipes.cpp),
// to_json() and docs/FLAGS.md (training_flags_doc.cpp) all walk it, so they cannot drift
// apart. Values from flags and from recipe files go through the same text converters here.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "core/text.h"
#include "train/training_args.h"

namespace ll {

// Whose name a setting is.
enum class FlagOrigin { Transformers, Trl, Peft, OptimumNeuron, LlamaLora };

// How far a setting from elsewhere does what its origin's does (llama-lora's own: Works).
enum class FlagSupport {
  Works,     // as its origin's (Field::note says where it differs)
  Partly,    // some of its origin's values are refused (the note says which and why)
  Differs,   // accepted under its origin's name with another meaning (the note says which)
  NoEffect,  // accepted for launch scripts; it changes nothing here, and the note says why
             // that is still its meaning
};

using FieldMember =
    std::variant<std::string TrainingArgs::*, int64_t TrainingArgs::*, uint64_t TrainingArgs::*,
                 double TrainingArgs::*, bool TrainingArgs::*>;

struct Field {
  std::string_view name;  // the HF name: the flag without dashes, the recipe and JSON key
  FieldMember member;
  std::string_view group;  // section of --help
  FlagOrigin origin;
  std::string_view help;
  std::string_view aliases = {};  // more flag names, CLI11 style: ",--model_id,..."
  // A text setting that is one of these values: any other is refused, naming them.
  std::span<const std::string_view> choices = {};
  FlagSupport support = FlagSupport::Works;
  std::string_view note = {};  // for docs/FLAGS.md: differences from the origin, refusals
};

std::span<const Field> training_fields();
// --recipe, the one flag outside the table (it is applied while parsing, before the others).
inline constexpr std::string_view kRecipeHelp =
    "Start from a recipe: sql (the seed's settings) or a .yaml/.json file of flag: value; "
    "flags given on the line override it";
const Field* find_field(std::string_view name);  // by name (not alias); nullptr if none
bool is_bool_field(const Field& field);

std::string to_lower(std::string_view text);
// HfArgumentParser's string_to_bool (yes/true/t/y/1, no/false/f/n/0), plus on/off, any case.
std::optional<bool> parse_bool(std::string_view text);
std::string join_names(std::span<const std::string_view> names);  // "a, b, c"

// Stores `text` in the field of `args`; returns "" or what is wrong with it ("expected an
// integer, got 'x'", "sgd is not supported (supported: adamw_torch, adamw_torch_fused)").
std::string assign_text(TrainingArgs& args, const Field& field, std::string_view text);
// The field's value as text (strings as they are, the rest as JSON).
std::string field_text(const TrainingArgs& args, const Field& field);

}  // namespace ll
