#!/usr/bin/env python3
"""Our side of the training workloads of ../shared/docs/BENCHMARK.md, through the CLI.

Makes the workload's model (`llama-lora init`, random bf16 weights of the real shape) and a
synthetic sql dataset once under build/bench-cache/, then runs `llama-lora train` with the
seed's LoRA (r 8, alpha 64, dropout 0.05, all seven projections, rsLoRA), AdamW, gradient
checkpointing, logging every step. Reports the median tokens/s of the steps after 2 warm-up
steps (from metrics.jsonl), MFU and the process's peak RSS; one JSON line.

    bench/train_workload.py --workload smol-135m --steps 5
    bench/train_workload.py --workload smol-135m --ranks 2        data parallel over mpirun
    bench/train_workload.py --workload llama3-1b --ranks 2 --tp 2 tensor parallel
    bench/train_workload.py --binary /tmp/old/build/release/llama-lora   another build (A/B)

With --ranks N the same global batch is split over N processes (mpirun, oversubscription
allowed, nproc/N OpenMP threads each) and the line adds the median share of step time spent
in collectives (metrics' comm_share).
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "release", "llama-lora")
WORKLOADS = {"smol-135m": (512, 4), "llama3-1b": (512, 2)}  # (seq, sequences per step)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", default="smol-135m", choices=sorted(WORKLOADS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--ranks", type=int, default=1, help="processes (mpirun -np)")
    parser.add_argument("--tp", type=int, default=1, help="--tensor_parallel_size")
    parser.add_argument("--seq", type=int, help="sequence length (default: the workload's)")
    parser.add_argument("--batch", type=int, help="global sequences per step")
    parser.add_argument("--binary", default=BIN,
                        help="the llama-lora to run (an A/B run against another build)")
    parser.add_argument("--bf16", choices=("True", "False"), default="True",
                        help="--bf16 for train (True: the sql recipe's bf16 compute; False: fp32)")
    parser.add_argument("--checkpoint_granularity", choices=("selective", "full"),
                        default="selective", help="train's --checkpoint_granularity")
    parser.add_argument("--eval_rows", type=int, default=500,
                        help="held-out rows (evaluated before and after; 0: none)")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    seq, batch = WORKLOADS[args.workload]
    seq = args.seq or seq
    batch = args.batch or batch
    dp = args.ranks // args.tp
    if args.ranks % args.tp or batch % dp:
        parser.error("--ranks must be a multiple of --tp and the batch a multiple of ranks/tp")
    cache = os.path.join(ROOT, "build", "bench-cache")
    model = os.path.join(cache, args.workload)
    data = os.path.join(cache, "sql.jsonl")
    os.makedirs(cache, exist_ok=True)
    if not os.path.exists(model):
        subprocess.run([binary, "init", "--preset", args.workload, "-o", model], check=True,
                       stdout=subprocess.DEVNULL)
    if not os.path.exists(data):
        subprocess.run([binary, "make-data", "--preset", "sql", "--rows", "4000", "-o", data],
                       check=True, stdout=subprocess.DEVNULL)
    out = os.path.join(cache, "run-" + args.workload)
    shutil.rmtree(out, ignore_errors=True)
    launch, env = [], dict(os.environ)
    if args.ranks > 1:
        launch = ["mpirun", "--oversubscribe", "-np", str(args.ranks)]
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // args.ranks)))
    subprocess.run(launch + [binary, "train", "--recipe", "sql", "--model", model, "--data", data,
                    "--output_dir", out, "--max_seq_length", str(seq),
                    "--per_device_train_batch_size", str(batch // dp),
                    "--tensor_parallel_size", str(args.tp), "--max_steps", str(args.steps),
                    "--logging_steps", "1", "--save_steps", "1000000", "--eval_rows", str(args.eval_rows),
                    "--eval_steps", "0", "--bf16", args.bf16,
                    "--checkpoint_granularity", args.checkpoint_granularity], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=env)
    steps = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    # What the run computed in (fp32, or bf16 when --bf16 True found oneDNN's bf16 path).
    checkpoint = sorted(glob.glob(os.path.join(out, "checkpoint-*")))[-1]
    with open(os.path.join(checkpoint, "training_args.json")) as f:
        compute = json.load(f).get("compute", "fp32")
    steps = [s for s in steps if "tokens_per_s" in s and "step" in s and s["step"] > 2]
    print(json.dumps({"workload": args.workload, "impl": "llama-lora", "device": "cpu",
                      "tokens_per_s": round(statistics.median(s["tokens_per_s"] for s in steps), 1),
                      "mfu": statistics.median(s["mfu"] for s in steps) if steps[0].get("mfu") else None,
                      "peak_mem_bytes": max(s["peak_rss_bytes"] for s in steps),
                      "steps": args.steps, "seq": seq, "batch": batch,
                      "ranks": args.ranks, "tp": args.tp,
                      "comm_share": (round(statistics.median(s["comm_share"] for s in steps), 3)
                                     if "comm_share" in steps[0] else None),
                      "compute": compute}))


if __name__ == "__main__":
    main()
