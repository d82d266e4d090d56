#!/usr/bin/env python3
"""Peer of bench/bench_merge.sh: the seed's step 2 in Python (transformers + peft).

Loads the base model folder in its stored dtype, applies the PEFT adapter, merge_and_unload(),
save_pretrained() into a fresh folder (safetensors, transformers' default 5GB shards). Prints
one JSON line {"workload":"merge-llama3-1b","impl":"hf-peft","seconds":...,"peak_rss_bytes":...}
with the wall time of load + merge + save and the process's peak RSS.

    python bench/peers/hf_merge.py --model DIR --adapter DIR --out DIR
"""
import argparse
import json
import resource
import shutil
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    start = time.perf_counter()
    base = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype="auto")
    merged = PeftModel.from_pretrained(base, args.adapter).merge_and_unload()
    shutil.rmtree(args.out, ignore_errors=True)
    merged.save_pretrained(args.out, safe_serialization=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"workload": "merge-llama3-1b", "impl": "hf-peft", "seconds": round(seconds, 2),
                      "peak_rss_bytes": peak}))
    shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
