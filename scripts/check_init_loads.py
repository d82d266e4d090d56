#!/usr/bin/env python3
"""Checks that a model folder written by `llama-lora init` loads and runs in the Python
stack (transformers + tokenizers), as a user moving between the tools would expect:

  - AutoTokenizer loads it; encode/decode round-trips; BOS is prepended; the chat template
    renders a system/user conversation with the Llama-3 headers;
  - optionally, `llama-lora tokenize` gives the same ids as Hugging Face tokenizers;
  - AutoModelForCausalLM loads it in bf16 without missing/unexpected weights, with the
    parameter count the config implies, weights initialised like transformers
    (Linear/Embedding std ~ initializer_range, RMSNorm weights 1);
  - a forward pass gives finite logits of shape [1, T, vocab_size] and a loss near
    ln(vocab_size) (random weights predict almost uniformly: within 0.5 for tiny; deeper or
    tied models with a larger initializer_range, e.g. smol-135m, land a little above it, so
    the bound is ln(vocab) - 0.5 .. ln(vocab) + 2); greedy generation runs.

Not part of CI (it needs torch). Install the pinned versions once, e.g. in a virtualenv:
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install -r scripts/fixtures/requirements.txt
Usage:
    build/release/llama-lora init --preset tiny -o /tmp/tiny
    /tmp/venv/bin/python scripts/check_init_loads.py /tmp/tiny [--llama-lora build/release/llama-lora]
Prints one JSON line of findings; exits 1 on the first failed check.
"""
import argparse
import json
import math
import pathlib
import subprocess
import sys

TEXTS = [
    "SELECT COUNT(*) FROM head WHERE age > 56",
    "CREATE TABLE department (name VARCHAR, budget_in_billions INTEGER)",
    "How many heads of the departments are older than 56 ?",
    "Zoë's café costs 12,50 €; 東京 🚀 done.\n\tTabs  and   spaces\n\n",
]


def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=pathlib.Path)
    parser.add_argument("--llama-lora", type=pathlib.Path, help="compare ids with this binary's tokenize")
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    report = {"torch": torch.__version__, "transformers": transformers.__version__}
    config = AutoConfig.from_pretrained(args.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    report["tokenizer_class"] = type(tokenizer).__name__
    report["tokenizer_vocab"] = len(tokenizer)
    check(len(tokenizer) <= config.vocab_size, f"tokenizer has {len(tokenizer)} tokens > vocab_size {config.vocab_size}")

    # Tokenizer: round trips, BOS (when its post-processor adds one: Meta's tokenizer.json
    # does, some copies of it, like the npm one in ../shared/data, do not), chat template.
    tokenizer_json = json.loads((args.model_dir / "tokenizer.json").read_text())
    adds_bos = "TemplateProcessing" in json.dumps(tokenizer_json.get("post_processor"))
    report["adds_bos"] = adds_bos
    for text in TEXTS:
        ids = tokenizer(text)["input_ids"]
        check((ids[0] == config.bos_token_id) == adds_bos,
              f"encoding starts with {ids[:3]}; bos {config.bos_token_id}, expected: {adds_bos}")
        back = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        check(back == text, f"round trip changed {text!r} into {back!r}")
        if args.llama_lora:
            out = subprocess.run([str(args.llama_lora), "tokenize", "--tokenizer", str(args.model_dir),
                                  "--text", text, "--add_special_tokens"],
                                 check=True, capture_output=True, text=True).stdout
            ours = [int(x) for x in out.split()]
            check(ours == ids, f"llama-lora tokenize gives {ours} for {text!r}, tokenizers gives {ids}")
    messages = [{"role": "system", "content": "You are a text to SQL query translator."},
                {"role": "user", "content": "How many heads are there?"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    check(rendered.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"),
          f"unexpected chat rendering {rendered[:80]!r}")
    check(rendered.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n"), "no generation prompt")
    chat_ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    for special in ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]:
        check(tokenizer.convert_tokens_to_ids(special) in chat_ids, f"{special} is not one token in the chat")
    report["chat_tokens"] = len(chat_ids)

    # Model: loads cleanly, right size, initialised like transformers.
    model, info = AutoModelForCausalLM.from_pretrained(args.model_dir, torch_dtype=torch.bfloat16,
                                                       output_loading_info=True)
    check(not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"],
          f"loading info: {info}")
    parameters = sum(p.numel() for p in model.parameters())
    report["parameters"] = parameters
    std = getattr(config, "initializer_range", 0.02)
    for name, tensor in model.state_dict().items():
        check(tensor.dtype == torch.bfloat16, f"{name} is {tensor.dtype}")
        values = tensor.float()
        if name.endswith("norm.weight"):
            check(bool(torch.all(values == 1)), f"{name} is not all ones")
        elif tensor.numel() >= 4096:
            measured = values.std().item()
            check(abs(measured / std - 1) < 0.1, f"{name}: std {measured:.5f}, expected {std}")
            check(abs(values.mean().item()) < 0.1 * std, f"{name}: mean {values.mean().item():.5f}")

    # Forward and generation.
    batch = tokenizer(TEXTS[0] + " " + TEXTS[2], return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, labels=batch["input_ids"])
    logits = out.logits
    check(tuple(logits.shape) == (1, batch["input_ids"].shape[1], config.vocab_size),
          f"logits shape {tuple(logits.shape)}")
    check(bool(torch.isfinite(logits).all()), "non-finite logits")
    loss = out.loss.item()
    report["loss"] = round(loss, 4)
    report["ln_vocab"] = round(math.log(config.vocab_size), 4)
    check(-0.5 < loss - math.log(config.vocab_size) < 2.0, f"loss {loss} far from ln(vocab)")
    generated = model.generate(**batch, max_new_tokens=5, do_sample=False,
                               pad_token_id=config.eos_token_id)
    check(generated.shape[1] <= batch["input_ids"].shape[1] + 5, "generate ran past max_new_tokens")
    report["ok"] = True
    print(json.dumps(report))


if __name__ == "__main__":
    main()
