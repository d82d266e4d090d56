# shellcheck shell=bash
# Settings shared by the three step scripts (sourced, not run). Every path is an environment
# variable whose default is the seed's layout on the shared volume, so the same scripts run in
# the long-running pod, in the MPIJob's launcher and on a workstation (point LL_SHARED or the
# single paths elsewhere).
LL_BIN=${LL_BIN:-llama-lora}
LL_SHARED=${LL_SHARED:-/shared}
LL_MODEL=${LL_MODEL:-$LL_SHARED/models/Meta-Llama-3-8B}
# The seed trains the base model with the Instruct model's tokenizer (its chat template).
LL_TOKENIZER=${LL_TOKENIZER:-$LL_SHARED/models/Meta-Llama-3-8B-Instruct}
LL_DATA=${LL_DATA:-$LL_SHARED/data/sql-create-context.jsonl}
LL_RUNS=${LL_RUNS:-$LL_SHARED/finetuned_models}

die() {
  echo "${0##*/}: $*" >&2
  exit 1
}

# require_dir PATH VARIABLE: a clear error before a long job starts, naming what to set.
require_dir() {
  [[ -d $1 ]] || die "$1 is not a folder (set $2)"
}
require_file() {
  [[ -f $1 ]] || die "$1 is not a file (set $2)"
}

# The run folder under LL_RUNS changed last: the one training just wrote to.
latest_run() {
  local run
  run=$(find "$LL_RUNS" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' 2>/dev/null |
    sort -n | tail -n 1 | cut -d' ' -f2-)
  [[ -n $run ]] || die "no training run under $LL_RUNS (run 1-train.sh first, or set LL_RUNS)"
  printf '%s\n' "$run"
}

# The checkpoint-<step> folder of RUN with the highest step. Only whole checkpoints match:
# one being written is still a hidden staging folder.
latest_checkpoint() {
  local ckpt
  ckpt=$(find "$1" -mindepth 1 -maxdepth 1 -type d -name 'checkpoint-*' |
    grep -E '/checkpoint-[0-9]+$' | sort -V | tail -n 1 || true)
  [[ -n $ckpt ]] || die "no checkpoint-<step> folder in $1 (set LL_CHECKPOINT)"
  printf '%s\n' "$ckpt"
}
