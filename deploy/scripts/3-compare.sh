#!/usr/bin/env bash
# Step 3 of the seed (03__test_model.py -m MERGED): the base and the fine-tuned model answer
# held-out examples 94, 99 and 123 greedily, 50 new tokens each; on a terminal it waits for
# Enter between examples, as the seed does.
#   3-compare.sh [MERGED_DIR] [compare flags...]     e.g. 3-compare.sh --json
# Default (or LL_MERGED): RUN/merged of the run under LL_RUNS changed last. Paths: common.sh.
# LL_EXAMPLES (94,99,123) and LL_MAX_NEW_TOKENS (50) change the seed's choice.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

merged=${LL_MERGED:-}
if [[ -n ${1:-} && $1 != -* ]]; then
  merged=$1
  shift
fi
if [[ -z $merged ]]; then
  merged=$(latest_run)/merged
fi
require_dir "$merged" LL_MERGED
require_dir "$LL_MODEL" LL_MODEL
require_file "$LL_DATA" LL_DATA
require_dir "$LL_TOKENIZER" "LL_TOKENIZER (LL_TOKENIZER=\$LL_MODEL uses the model's own)"

interactive=()
if [[ -t 0 && -t 1 ]]; then
  interactive=(--interactive)
fi
# Both models render prompts with the training tokenizer's chat template, as the seed does.
exec "$LL_BIN" compare --base "$LL_MODEL" --tuned "$merged" --tokenizer "$LL_TOKENIZER" \
  --data "$LL_DATA" \
  --examples "${LL_EXAMPLES:-94,99,123}" --max_new_tokens "${LL_MAX_NEW_TOKENS:-50}" \
  "${interactive[@]}" "$@"
