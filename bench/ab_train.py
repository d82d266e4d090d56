#!/usr/bin/env python3
"""An A/B speed check of two llama-lora builds on one training workload: runs
bench/train_workload.py alternately with build A and build B (A B A B ...), --pairs times,
and prints each run, the medians of tokens/s and peak RSS, and the ratio B / A. Use it to
show that a change does not slow training (A: the previous main, B: the change).

    bench/ab_train.py --a /tmp/prev/build/release/llama-lora --b build/release/llama-lora \\
        --workload smol-135m --pairs 3 --steps 5
    bench/ab_train.py --a build/release/llama-lora --a_bf16 False --b build/release/llama-lora \
        --workload smol-135m          fp32 against bf16 compute, one build
    bench/ab_train.py --a build/release/llama-lora --a_ckpt full --b build/release/llama-lora
        --workload smol-135m          full against selective checkpointing, one build
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(binary, bf16, granularity, args):
    command = [sys.executable, os.path.join(ROOT, "bench", "train_workload.py"),
               "--binary", binary, "--workload", args.workload, "--steps", str(args.steps),
               "--eval_rows", "0", "--bf16", bf16, "--checkpoint_granularity", granularity]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--a", required=True, help="build A's llama-lora (the baseline)")
    parser.add_argument("--b", required=True, help="build B's llama-lora (the change)")
    parser.add_argument("--workload", default="smol-135m")
    parser.add_argument("--a_bf16", choices=("True", "False"), default="True",
                        help="--bf16 for A's runs (A/B of fp32 against bf16: the same binary twice)")
    parser.add_argument("--b_bf16", choices=("True", "False"), default="True")
    parser.add_argument("--a_ckpt", choices=("selective", "full"), default="selective",
                        help="--checkpoint_granularity for A's runs")
    parser.add_argument("--b_ckpt", choices=("selective", "full"), default="selective")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    results = {"a": [], "b": []}
    for pair in range(args.pairs):
        for side in ("a", "b"):
            line = run(getattr(args, side), getattr(args, side + "_bf16"),
                       getattr(args, side + "_ckpt"), args)
            results[side].append(line)
            print(f"pair {pair + 1} {side.upper()}: {line['tokens_per_s']} tokens/s, "
                  f"peak RSS {line['peak_mem_bytes'] / 1e9:.2f} GB, compute {line['compute']}", flush=True)
    medians = {side: statistics.median(r["tokens_per_s"] for r in rows)
               for side, rows in results.items()}
    rss = {side: statistics.median(r["peak_mem_bytes"] for r in rows)
           for side, rows in results.items()}
    print(json.dumps({"workload": args.workload, "pairs": args.pairs, "steps": args.steps,
                      "a_tokens_per_s": medians["a"], "b_tokens_per_s": medians["b"],
                      "ratio_b_over_a": round(medians["b"] / medians["a"], 4),
                      "a_peak_rss_bytes": rss["a"], "b_peak_rss_bytes": rss["b"],
                      "a_compute": results["a"][0]["compute"],
                      "b_compute": results["b"][0]["compute"]}))


if __name__ == "__main__":
    main()
