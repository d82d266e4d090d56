#!/usr/bin/env python3
"""Peer for bench_data_pipeline: the seed's data preparation in Python.

Reads the sql-create-context JSONL, orders rows as datasets' shuffle(seed=23) does
(numpy default_rng(23).permutation), splits off the last 500 rows for evaluation, builds the
seed's three-message conversations, renders them with transformers' apply_chat_template,
tokenizes without special tokens and packs into 1024-token sequences with <|end_of_text|>
between conversations. Median wall time of 5 runs of the whole pipeline; one JSON line.

    pip install -r scripts/fixtures/requirements.txt
    python3 bench/peers/hf_data_pipeline.py [DATA.jsonl] [TOKENIZER_DIR]
"""
import json
import statistics
import sys
import time

import numpy as np
from transformers import AutoTokenizer

SYSTEM = ("You are a text to SQL query translator. Users will ask you questions in English and you "
          "will generate a SQL query based on the provided SCHEMA.\nSCHEMA:\n{context}")


def run(path, tokenizer, seq_len=1024, eval_rows=500):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    order = np.random.default_rng(23).permutation(len(rows))
    train = [rows[i] for i in order[: len(rows) - eval_rows]]
    evaluation = [rows[i] for i in order[len(rows) - eval_rows:]]
    eos = tokenizer.convert_tokens_to_ids("<|end_of_text|>")
    result = {}
    for name, split in (("train", train), ("eval", evaluation)):
        stream = []
        for row in split:
            messages = [{"role": "system", "content": SYSTEM.format(context=row["context"])},
                        {"role": "user", "content": row["question"]},
                        {"role": "assistant", "content": row["answer"]}]
            text = tokenizer.apply_chat_template(messages, tokenize=False)
            stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
            stream.append(eos)
        sequences = [stream[i:i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)]
        result[name] = {"rows": len(split), "tokens": len(stream), "sequences": len(sequences)}
    return result, sum(len(json.dumps(r)) for r in rows)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/sql-create-context/sample-3500.jsonl"
    tok_dir = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/llama3-tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        result, _ = run(path, tokenizer)
        times.append(time.perf_counter() - start)
    rows = result["train"]["rows"] + result["eval"]["rows"]
    tokens = result["train"]["tokens"] + result["eval"]["tokens"]
    seconds = statistics.median(times)
    print(json.dumps({"bench": "data_pipeline", "impl": "hf-transformers", "rows": rows,
                      "tokens": tokens, "train": result["train"], "eval": result["eval"],
                      "total_s": round(seconds, 4), "rows_per_s": round(rows / seconds),
                      "tokens_per_s": round(tokens / seconds)}))


if __name__ == "__main__":
    main()
