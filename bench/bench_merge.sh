#!/usr/bin/env bash
# Merge benchmark (not a test): wall time and peak resident memory of `llama-lora merge` on
# the llama3-1b shape (Llama-3.2-1B: 16 layers, hidden 2048, vocab 128256, tied embeddings;
# random bf16 weights from `llama-lora init`), with the seed's LoRA (r 8, alpha 64, rsLoRA,
# all seven projections) after one training step, so that every lora_B is non-zero.
# Prints one JSON line:
#   {"workload":"merge-llama3-1b","impl":"llama-lora","seconds":...,"peak_rss_bytes":...}
# seconds: median wall time of --runs merges; peak_rss_bytes: the largest peak RSS of those
# runs (GNU time's %M, the kernel's ru_maxrss).
#
#   bench/bench_merge.sh [--bin build/release/llama-lora] [--work DIR] [--runs 3]
#
# The model (2.5 GB) and adapter are made once in --work (default /tmp/ll-bench-merge) and
# reused; each run writes and then removes WORK/merged.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/build/release/llama-lora"
WORK=/tmp/ll-bench-merge
RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "bench_merge.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || { echo "bench_merge.sh: $BIN not built (scripts/setup)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench_merge.sh: needs GNU time (apt-get install time)" >&2; exit 1; }
mkdir -p "$WORK"

if [ ! -f "$WORK/model/config.json" ]; then
  echo "bench_merge.sh: making the llama3-1b model in $WORK/model" >&2
  "$BIN" init --preset llama3-1b -o "$WORK/model" --overwrite >&2
fi
if [ ! -f "$WORK/adapter/adapter_model.safetensors" ]; then
  echo "bench_merge.sh: one training step for the adapter in $WORK/adapter" >&2
  "$BIN" make-data --preset sql --rows 64 -o "$WORK/sql.jsonl" >&2
  rm -rf "$WORK/adapter"
  "$BIN" train --model "$WORK/model" --data "$WORK/sql.jsonl" --output_dir "$WORK/adapter" \
    --max_steps 1 --max_seq_length 32 --per_device_train_batch_size 1 --eval_rows 0 \
    --save_steps 1000 --learning_rate 1e-3 --lora_r 8 --lora_alpha 64 --use_rslora true \
    --target_modules all-linear >&2
fi

times=()
peak=0
for _ in $(seq "$RUNS"); do
  rm -rf "$WORK/merged"
  /usr/bin/time -f '%e %M' -o "$WORK/time.txt" \
    "$BIN" merge --model "$WORK/model" --adapter "$WORK/adapter" -o "$WORK/merged" >&2
  read -r seconds rss_kib < "$WORK/time.txt"
  times+=("$seconds")
  [ "$rss_kib" -gt "$peak" ] && peak=$rss_kib
done
rm -rf "$WORK/merged"
median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
printf '{"workload":"merge-llama3-1b","impl":"llama-lora","seconds":%s,"peak_rss_bytes":%d,"runs":%d}\n' \
  "$median" $((peak * 1024)) "$RUNS"
