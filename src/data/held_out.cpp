// See held_out.h.
#include "data/held_out.h"

#include "core/error.h"
#include "data/dataset.h"

namespace ll {

std::vector<HeldOutExample> held_out_examples(const RecordFile& records, Preset preset,
                                              const SplitPlan& plan, BadRows policy) {
  if (preset == Preset::Text) {
    fail("data",
         "the text preset has no reference answers; evaluation by generation needs a "
         "conversation preset (sql, messages, alpaca)");
  }
  const ConvertedRows converted = convert_records(records, preset, policy);
  const RowSplit split = split_rows(records.records.size(), plan, records.path);
  std::vector<HeldOutExample> out;
  out.reserve(split.eval.size());
  for (size_t i = 0; i < split.eval.size(); ++i) {
    const uint64_t row = split.eval[i];
    if (!converted.good[row]) continue;  // a skipped bad row leaves a hole, as in training
    const Example& example = converted.examples[row];
    const Record& record = records.records[row];
    size_t answer = example.messages.size();
    while (answer > 0 && example.messages[answer - 1].role != "assistant") --answer;
    if (answer == 0) {
      const std::string where = records.path + ":" + std::to_string(record.line);
      if (policy == BadRows::Skip) continue;
      fail("data", where + ": the row has no assistant message to compare with");
    }
    HeldOutExample held;
    held.index = i;
    held.line = record.line;
    held.prompt.assign(example.messages.begin(),
                       example.messages.begin() + static_cast<std::ptrdiff_t>(answer - 1));
    held.reference = example.messages[answer - 1].content;
    held.record = record.value;
    out.push_back(std::move(held));
  }
  return out;
}

}  // namespace ll
