#!/usr/bin/env python3
"""Reads a run's TensorBoard folder with TensorBoard's own reader and checks it against
metrics.jsonl: every numeric field of every line (but "step") must be a scalar at that step,
under Hugging Face's tag (eval_X -> eval/X, X -> train/X), with the value rounded to float32,
in the order of the lines, and nothing more.

    pip install tensorboard==2.21.0      # the version this was checked with
    scripts/check_tensorboard.py OUTPUT_DIR [--logdir DIR]
    scripts/check_tensorboard.py --self-test path/to/llama-lora [--mpiexec mpirun]

--self-test trains the tiny model (init --preset tiny, make-data) in a temporary folder and
checks a single-process run, the same run resumed from its middle checkpoint, and with
--mpiexec a 2 x 2 tensor x data-parallel run. It exits 77 (ctest's skip) when the tensorboard
package is missing.

Without --logdir the folder is the one under OUTPUT_DIR/runs/ that holds event files (it must
be one). Prints "tensorboard check: N scalars of N match" and exits 0, or lists the first
differences and exits 1. EventAccumulator applies TensorBoard's purge of steps at or after a
SessionLog START (a resumed run), so the folder must read as the resumed metrics.jsonl does.
"""
import argparse
import json
import pathlib
import sys

import os
import subprocess
import tempfile

try:
    import numpy as np
    from tensorboard.backend.event_processing import event_accumulator
except ImportError:
    print("check_tensorboard: the tensorboard package is missing "
          "(pip install tensorboard==2.21.0); skipped")
    sys.exit(77)


def expected_scalars(metrics_path):
    """{tag: [(step, float32 value), ...]} in line order; a partial last line is skipped."""
    expected = {}
    for number, text in enumerate(metrics_path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            print(f"{metrics_path}:{number}: not JSON (a crashed run's last line?), skipped")
            continue
        step = line["step"]
        for key, value in line.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            tag = "eval/" + key[5:] if key.startswith("eval_") else "train/" + key
            expected.setdefault(tag, []).append((step, float(np.float32(value))))
    return expected


def find_logdir(output_dir):
    runs = output_dir / "runs"
    dirs = sorted({p.parent for p in runs.rglob("*tfevents*")}) if runs.is_dir() else []
    if len(dirs) != 1:
        sys.exit(f"{runs}: expected one folder of event files, found {len(dirs)}; pass --logdir")
    return dirs[0]


def check(output_dir, logdir=None):
    """Compares the folder with metrics.jsonl; returns 0 when every scalar matches, else 1."""
    logdir = logdir or find_logdir(output_dir)
    expected = expected_scalars(output_dir / "metrics.jsonl")

    # size_guidance 0: keep every scalar (the default samples 10,000 per tag).
    acc = event_accumulator.EventAccumulator(
        str(logdir), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    got = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}

    problems = []
    for tag in sorted(set(expected) | set(got)):
        want, have = expected.get(tag, []), got.get(tag, [])
        if want != have:
            problems.append(f"{tag}: metrics.jsonl {want[:4]}... ({len(want)}), "
                            f"TensorBoard {have[:4]}... ({len(have)})")
    total = sum(len(v) for v in expected.values())
    matched = sum(len(v) for tag, v in expected.items() if got.get(tag) == v)
    print(f"tensorboard check: {matched} scalars of {total} match ({logdir})")
    for problem in problems[:10]:
        print("  " + problem)
    return 1 if problems or total == 0 else 0


def self_test(binary, mpiexec):
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")

    def run(*args):
        subprocess.run(list(args), check=True, env=env, stdout=subprocess.DEVNULL)

    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        run(binary, "init", "--preset", "tiny", "-o", str(tmp / "model"))
        run(binary, "make-data", "--preset", "sql", "--rows", "300", "-o", str(tmp / "sql.jsonl"))

        def train_args(out):
            return [binary, "train", "--model", str(tmp / "model"), "--data",
                    str(tmp / "sql.jsonl"), "--output_dir", str(out), "--max_seq_length", "64",
                    "--train_rows", "40", "--eval_rows", "16",
                    "--per_device_train_batch_size", "2", "--max_steps", "12",
                    "--logging_steps", "2", "--save_steps", "6", "--eval_steps", "4",
                    "--lora_r", "4", "--report_to", "tensorboard"]

        print("single process:")
        run(*train_args(tmp / "single"))
        failures += check(tmp / "single")
        print("resumed from checkpoint-6 (the first file's steps 7-12 are stale):")
        run(*train_args(tmp / "single"), "--resume_from_checkpoint",
            str(tmp / "single" / "checkpoint-6"))
        failures += check(tmp / "single")
        if mpiexec:
            print("tensor parallel 2 x data parallel 2:")
            run(mpiexec, "--oversubscribe", "-np", "4", *train_args(tmp / "tpdp"),
                "--tensor_parallel_size", "2")
            failures += check(tmp / "tpdp")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=pathlib.Path, nargs="?")
    parser.add_argument("--logdir", type=pathlib.Path)
    parser.add_argument("--self-test", metavar="LLAMA_LORA")
    parser.add_argument("--mpiexec", help="with --self-test: also a 2 x 2 tp x dp run")
    args = parser.parse_args()
    if args.self_test:
        return self_test(args.self_test, args.mpiexec)
    if args.output_dir is None:
        parser.error("OUTPUT_DIR or --self-test is required")
    return check(args.output_dir, args.logdir)


if __name__ == "__main__":
    sys.exit(main())
