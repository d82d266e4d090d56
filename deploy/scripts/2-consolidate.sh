#!/usr/bin/env bash
# Step 2 of the seed (02__consolidate_adapter_shards_and_merge_model.py -i CKPT -o OUT): join
# the tensor-parallel adapter shards of a checkpoint into one PEFT adapter (CKPT/consolidated,
# where the seed puts it) and merge that into the base model, writing a plain Hugging Face
# model folder.
#   2-consolidate.sh [CHECKPOINT_DIR [MERGED_DIR]]
# Defaults (or LL_CHECKPOINT, LL_MERGED): the highest checkpoint-<step> of the run under LL_RUNS
# changed last, and RUN/merged. Paths: see common.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

checkpoint=${1:-${LL_CHECKPOINT:-}}
if [[ -z $checkpoint ]]; then
  run=$(latest_run) # its own assignment, so that set -e stops here when there is none
  checkpoint=$(latest_checkpoint "$run")
fi
checkpoint=${checkpoint%/}
merged=${2:-${LL_MERGED:-$(dirname "$checkpoint")/merged}}
require_dir "$checkpoint" LL_CHECKPOINT
require_dir "$LL_MODEL" LL_MODEL
require_dir "$LL_TOKENIZER" "LL_TOKENIZER (LL_TOKENIZER=\$LL_MODEL uses the model's own)"

echo "2-consolidate.sh: $checkpoint -> $checkpoint/consolidated -> $merged"
# --overwrite: running the step again replaces its outputs, only once the new ones are whole.
# --tokenizer: the merged model carries the tokenizer training used (the Instruct model's).
exec "$LL_BIN" consolidate -i "$checkpoint" -o "$checkpoint/consolidated" --overwrite \
  --merge_into "$LL_MODEL" --merged_output "$merged" --tokenizer "$LL_TOKENIZER"
