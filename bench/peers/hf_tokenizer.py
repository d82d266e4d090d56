#!/usr/bin/env python3
"""Peer for bench_tokenizer: Hugging Face `tokenizers` (Rust) on the same corpus.

Builds the same documents as bench/bench_tokenizer.cpp (each .jsonl row's question, context and
answer joined by newlines) and reports encode MB/s, tokens/s and decode MB/s, median of 5, in
two modes: one `encode` call per document from Python (how a data pipeline calls it) and
`encode_batch` (Rust threads, all cores). Prints one JSON line.

    pip install -r scripts/fixtures/requirements.txt
    python3 bench/peers/hf_tokenizer.py [TOKENIZER_DIR] [CORPUS.jsonl]
"""
import json
import statistics
import sys
import time

from tokenizers import Tokenizer


def read_documents(path):
    documents = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            parts = [row[k] for k in ("question", "context", "answer") if isinstance(row.get(k), str)]
            documents.append("\n".join(parts))
    return documents


def main():
    tok_dir = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/llama3-tokenizer"
    corpus = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/sql-create-context/sample-3500.jsonl"
    start = time.perf_counter()
    tokenizer = Tokenizer.from_file(tok_dir.rstrip("/") + "/tokenizer.json")
    load_s = time.perf_counter() - start
    documents = read_documents(corpus)
    total_bytes = sum(len(d.encode("utf-8")) for d in documents)

    def timed(fn, runs=5):
        times = []
        out = None
        for _ in range(runs):
            start = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times), out

    loop_s, encodings = timed(lambda: [tokenizer.encode(d, add_special_tokens=False).ids for d in documents])
    batch_s, _ = timed(lambda: tokenizer.encode_batch(documents, add_special_tokens=False))
    tokens = sum(len(ids) for ids in encodings)
    decode_s, _ = timed(lambda: [tokenizer.decode(ids) for ids in encodings])
    mb = total_bytes / 1e6
    print(json.dumps({
        "bench": "tokenizer", "impl": "hf-tokenizers", "documents": len(documents),
        "bytes": total_bytes, "tokens": tokens, "load_s": round(load_s, 4),
        "encode_mb_s": round(mb / loop_s, 2), "encode_tokens_s": round(tokens / loop_s),
        "encode_batch_mb_s": round(mb / batch_s, 2), "decode_mb_s": round(mb / decode_s, 2),
    }))


if __name__ == "__main__":
    main()
