#!/usr/bin/env bash
# Distributed training on this machine (issue: distributed training): tokens/s of the same
# global batch on 1 process and on 2 (data parallel, then tensor parallel), and the share of
# step time spent in collectives. One JSON line per run (bench/train_workload.py).
#   bench/bench_distributed.sh [steps]
# smol-135m (9 heads) cannot split its heads in two, so tensor parallel runs llama3-1b.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-5}
export OMP_WAIT_POLICY=PASSIVE
run() { bench/train_workload.py --steps "$steps" --eval_rows 0 "$@"; }
run --workload smol-135m --seq 512 --batch 4 --ranks 1
run --workload smol-135m --seq 512 --batch 4 --ranks 2
run --workload llama3-1b --seq 256 --batch 2 --ranks 1
run --workload llama3-1b --seq 256 --batch 2 --ranks 2 --tp 2
