#!/usr/bin/env python3
"""Our side of the training workloads of ../shared/docs/BENCHMARK.md, through the CLI.

Makes the workload's model (`llama-lora init`, random bf16 weights of the real shape) and a
synthetic sql dataset once under build/bench-cache/, then runs `llama-lora train` with the
seed's LoRA (r 8, alpha 64, dropout 0.05, all seven projections, rsLoRA), AdamW, gradient
checkpointing, logging every step. Reports the median tokens/s of the steps after 2 warm-up
steps (from metrics.jsonl), MFU and the process's peak RSS; one JSON line.

    bench/train_workload.py --workload smol-135m --steps 5
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "release", "llama-lora")
WORKLOADS = {"smol-135m": (512, 4), "llama3-1b": (1024, 1)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", default="smol-135m", choices=sorted(WORKLOADS))
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    seq, batch = WORKLOADS[args.workload]
    cache = os.path.join(ROOT, "build", "bench-cache")
    model = os.path.join(cache, args.workload)
    data = os.path.join(cache, "sql.jsonl")
    os.makedirs(cache, exist_ok=True)
    if not os.path.exists(model):
        subprocess.run([BIN, "init", "--preset", args.workload, "-o", model], check=True,
                       stdout=subprocess.DEVNULL)
    if not os.path.exists(data):
        subprocess.run([BIN, "make-data", "--preset", "sql", "--rows", "4000", "-o", data],
                       check=True, stdout=subprocess.DEVNULL)
    out = os.path.join(cache, "run-" + args.workload)
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([BIN, "train", "--recipe", "sql", "--model", model, "--data", data,
                    "--output_dir", out, "--max_seq_length", str(seq),
                    "--per_device_train_batch_size", str(batch), "--max_steps", str(args.steps),
                    "--logging_steps", "1", "--save_steps", "1000000", "--eval_rows", "500",
                    "--eval_steps", "0"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    steps = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    steps = [s for s in steps if "tokens_per_s" in s and "step" in s and s["step"] > 2]
    print(json.dumps({"workload": args.workload, "impl": "llama-lora", "device": "cpu",
                      "tokens_per_s": round(statistics.median(s["tokens_per_s"] for s in steps), 1),
                      "mfu": statistics.median(s["mfu"] for s in steps) if steps[0].get("mfu") else None,
                      "peak_mem_bytes": max(s["peak_rss_bytes"] for s in steps),
                      "steps": args.steps, "seq": seq, "batch": batch,
                      "compute": "bf16 weights, fp32 compute"}))


if __name__ == "__main__":
    main()
