// The held-out (evaluation) examples of a dataset as whole conversations, in the order and
// with the row choice that training uses (data/split.h: the seed's shuffle(seed=23) and
// select), so `compare --examples 94,99,123` and `eval` read exactly the rows a training run
// held out. Each example splits into the prompt (every message before the last assistant
// message) and the reference answer (that message's content).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/presets.h"
#include "data/records.h"
#include "data/split.h"

namespace ll {

struct HeldOutExample {
  uint64_t index = 0;               // position in the evaluation split (what --examples counts)
  uint64_t line = 0;                // 1-based line of the row in the file
  std::vector<ChatMessage> prompt;  // system/user turns before the answer
  std::string reference;            // the last assistant message's content
  nlohmann::json record;            // the raw row (sql: its `context` builds the schema)
};

// The evaluation split's conversation examples. Bad rows fail (BadRows::Fail, naming file and
// line) or leave holes (Skip), exactly as in training; so do rows without an assistant turn
// (the `text` preset has none: an error says eval needs a conversation preset).
std::vector<HeldOutExample> held_out_examples(const RecordFile& records, Preset preset,
                                              const SplitPlan& plan, BadRows policy);

}  // namespace ll
