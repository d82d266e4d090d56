#!/usr/bin/env bash
# Step 1 of the seed (01__launch_training.sh): LoRA fine-tuning with the seed's sql recipe,
# launched by mpirun where the seed used torchrun. One process per device; LL_NPROC processes
# form LL_NPROC / LL_TP data-parallel replicas of LL_TP tensor-parallel ranks (the seed:
# 32 processes = tensor parallel 8 x data parallel 4).
#   1-train.sh [train flags...]          e.g. 1-train.sh --max_steps 20 (flags override the recipe)
# Environment (paths: see common.sh):
#   LL_NPROC        processes (default: the GPUs nvidia-smi lists, else 1)
#   LL_TP           tensor-parallel size (default: LL_NPROC, one group over this pod's devices)
#   LL_OUTPUT_DIR   run folder (default: LL_RUNS/<YYYYmmdd_HHMMSS>, as the seed); if it already
#                   holds a checkpoint, training resumes from the latest one
#   LL_DDP_TIMEOUT  seconds a collective may wait for the other ranks (--ddp_timeout)
#   LL_MAP_BY       mpirun --map-by (default slot: the ranks of a tensor-parallel group, which are
#                   consecutive, fill one node before the next, as the seed lays them out);
#                   ppr:1:socket for one rank per CPU socket
#   LL_BIND_TO      mpirun --bind-to (default none: GPU ranks; socket with ppr:1:socket)
#   LL_MPIRUN_ARGS  extra mpirun options, e.g. "--oversubscribe"
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gpus=0
if command -v nvidia-smi >/dev/null; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
fi
LL_NPROC=${LL_NPROC:-$((gpus > 0 ? gpus : 1))}
LL_TP=${LL_TP:-$LL_NPROC}
[[ $LL_NPROC =~ ^[1-9][0-9]*$ && $LL_TP =~ ^[1-9][0-9]*$ ]] ||
  die "LL_NPROC ($LL_NPROC) and LL_TP ($LL_TP) must be positive integers"
((LL_NPROC % LL_TP == 0)) || die "LL_NPROC $LL_NPROC does not divide by LL_TP $LL_TP"

bin=$(command -v "$LL_BIN") || die "$LL_BIN not found (set LL_BIN)"
require_dir "$LL_MODEL" LL_MODEL
require_dir "$LL_TOKENIZER" "LL_TOKENIZER (LL_TOKENIZER=\$LL_MODEL uses the model's own)"
require_file "$LL_DATA" LL_DATA
LL_OUTPUT_DIR=${LL_OUTPUT_DIR:-$LL_RUNS/$(date +%Y%m%d_%H%M%S)}
mkdir -p "$LL_OUTPUT_DIR"

args=(train --recipe sql --model "$LL_MODEL" --tokenizer "$LL_TOKENIZER" --data "$LL_DATA"
  --output_dir "$LL_OUTPUT_DIR" --tensor_parallel_size "$LL_TP")
# A launcher restarted after a failure (or the same command run again) continues the run.
if compgen -G "$LL_OUTPUT_DIR/checkpoint-[0-9]*" >/dev/null; then
  args+=(--resume_from_checkpoint latest)
fi
if [[ -n ${LL_DDP_TIMEOUT:-} ]]; then
  args+=(--ddp_timeout "$LL_DDP_TIMEOUT")
fi

echo "1-train.sh: $LL_NPROC process(es): tensor parallel $LL_TP x data parallel" \
  "$((LL_NPROC / LL_TP)) -> $LL_OUTPUT_DIR"
if ((LL_NPROC == 1)); then
  exec "$bin" "${args[@]}" "$@"
fi

# Ranks on other nodes start from sshd's bare environment: forward what they read from it
# (mpirun forwards OMPI_MCA_* by itself).
forward=()
for name in OMP_NUM_THREADS OMP_WAIT_POLICY NCCL_DEBUG NCCL_SOCKET_IFNAME; do
  if [[ -n ${!name:-} ]]; then forward+=(-x "$name"); fi
done
read -r -a extra <<<"${LL_MPIRUN_ARGS:-}"
exec mpirun -np "$LL_NPROC" --map-by "${LL_MAP_BY:-slot}" --bind-to "${LL_BIND_TO:-none}" \
  "${forward[@]}" "${extra[@]}" "$bin" "${args[@]}" "$@"
