#!/usr/bin/env python3
"""Peer for the generate-smol-135m workload: transformers' generate with its KV cache.

Builds the smol-135m Llama shape with random weights, then per run generates new_tokens
greedy tokens for a batch of random prompts of prompt_len tokens (no padding, no EOS stop:
min_new_tokens = max_new_tokens). A logits processor notes when generate first asks for
logits, which is the end of the prefill; so, as bench/bench_generate.cpp reports them:

    prefill_tokens_per_s = batch * prompt_len / (first logits - start)
    decode_tokens_per_s  = batch * (new_tokens - 1) / (end - first logits)

medians over the runs after one warm-up run. One JSON line.

    python3 bench/peers/hf_generate.py [--batch 4] [--prompt_len 128] [--new_tokens 64]
                                       [--dtype bfloat16|float32] [--runs 3]
"""
import argparse
import json
import os
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessor, LogitsProcessorList

SMOL_135M = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3, intermediate_size=1536, vocab_size=49152,
                 tie_word_embeddings=True, rope_theta=100000.0, rms_norm_eps=1e-5,
                 max_position_embeddings=8192)


class FirstCall(LogitsProcessor):
    """Records the time of the first call (generate has the prefill's logits then)."""

    def __init__(self):
        self.first = None

    def __call__(self, input_ids, scores):
        if self.first is None:
            self.first = time.perf_counter()
        return scores


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--prompt_len", type=int, default=128)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMOL_135M)).to(getattr(torch, args.dtype)).eval()

    def run_once(seed):
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, SMOL_135M["vocab_size"], (args.batch, args.prompt_len),
                            generator=generator)
        marker = FirstCall()
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 do_sample=False, max_new_tokens=args.new_tokens,
                                 min_new_tokens=args.new_tokens, eos_token_id=None,
                                 pad_token_id=0, logits_processor=LogitsProcessorList([marker]))
        end = time.perf_counter()
        assert out.shape[1] == args.prompt_len + args.new_tokens
        return marker.first - start, end - marker.first

    run_once(0)  # warm-up
    prefill, decode = [], []
    for r in range(args.runs):
        prefill_s, decode_s = run_once(r + 1)
        prefill.append(args.batch * args.prompt_len / prefill_s)
        decode.append(args.batch * (args.new_tokens - 1) / decode_s)
    print(json.dumps({"workload": "generate-smol-135m", "impl": "hf-transformers", "device": "cpu",
                      "prefill_tokens_per_s": round(statistics.median(prefill), 1),
                      "decode_tokens_per_s": round(statistics.median(decode), 1),
                      "batch": args.batch, "prompt_len": args.prompt_len,
                      "new_tokens": args.new_tokens, "runs": args.runs, "threads": args.threads,
                      "dtype": args.dtype, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
