#!/usr/bin/env python3
"""Peer for the training workloads of ../shared/docs/BENCHMARK.md: transformers + peft.

Builds the workload's Llama shape with random weights, applies the seed's LoRA (r 8, alpha 64,
dropout 0.05, all seven projections, rsLoRA), and runs optimizer steps of `seq x batch`
random tokens with AdamW, gradient checkpointing and bf16 autocast (CPU) / bf16 (GPU).
Reports trained tokens/s over the steps after 2 warm-up steps and the peak RSS; one JSON line.

    python3 bench/peers/hf_peft_train.py --workload smol-135m --steps 5

Requirements: bench/peers/requirements.txt (the current PyPI releases users install).
"""
import argparse
import json
import resource
import statistics
import time

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

WORKLOADS = {
    "smol-135m": (dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                       num_key_value_heads=3, intermediate_size=1536, vocab_size=49152,
                       tie_word_embeddings=True, rope_theta=100000.0, rms_norm_eps=1e-5,
                       max_position_embeddings=8192), 512, 4),
    # Llama-3.2-1B's shape (llama-lora's `init --preset llama3-1b`), the seq 512 x 2.
    "llama3-1b": (dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                       num_key_value_heads=8, intermediate_size=8192, vocab_size=128256,
                       tie_word_embeddings=True, rope_theta=500000.0, rms_norm_eps=1e-5,
                       max_position_embeddings=131072,
                       rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
                                         high_freq_factor=4.0,
                                         original_max_position_embeddings=8192)), 512, 2),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", default="smol-135m", choices=sorted(WORKLOADS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape, seq, batch = WORKLOADS[args.workload]
    model = LlamaForCausalLM(LlamaConfig(**shape)).to(torch.bfloat16)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    lora = LoraConfig(r=8, lora_alpha=64, lora_dropout=0.05, use_rslora=True, bias="none",
                      task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                      "up_proj", "down_proj"])
    model = get_peft_model(model, lora)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    step_times = []
    for _ in range(args.steps):
        ids = torch.randint(0, shape["vocab_size"], (batch, seq))
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad()
        step_times.append(time.perf_counter() - start)
    steady = step_times[2:] or step_times
    seconds = statistics.median(steady)
    print(json.dumps({"workload": args.workload, "impl": "hf-peft", "device": "cpu",
                      "tokens_per_s": round(seq * batch / seconds, 1),
                      "step_s": round(seconds, 3), "steps": args.steps, "seq": seq,
                      "batch": batch, "threads": args.threads,
                      "peak_mem_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "torch": torch.__version__, "transformers": transformers.__version__,
                      "peft": peft.__version__}))


if __name__ == "__main__":
    main()
