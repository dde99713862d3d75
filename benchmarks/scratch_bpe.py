"""The course's byte-level BPE written by hand (course/scratch/bpe.py) beside HF `tokenizers`' BpeTrainer: training time
on the NSMC reviews at vocabulary 1,000, one core each, and whether the two give the same merges.

    taskset -c 1 .venv/bin/python benchmarks/scratch_bpe.py             # all reviews; writes benchmarks/results/scratch_bpe.json
    taskset -c 1 .venv/bin/python benchmarks/scratch_bpe.py --limit 100000   # the first 100,000 reviews only

Both get the same texts (read into memory first, not timed), the same ByteLevel pre-tokenisation (no prefix space),
the 256 byte characters as the initial alphabet, the special token "<|endoftext|>" and min_frequency 2; each is timed
from the texts to the trained merges (pre-tokenisation and word counting included). HF runs on one thread
(RAYON_NUM_THREADS=1, set here before `tokenizers` is imported); pin the process to one core with `taskset` so that
both run on a single core. Times are CPU seconds of this process (`time.process_time`, robust to other work sharing
the core) and wall seconds; `slowdown` is scratch / HF in CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # before tokenizers starts its thread pool
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import tokenizers  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402

from benchmarks.pipeline_tiny import write_result  # noqa: E402
from course.scratch import bpe  # noqa: E402
from kollm.data import sources  # noqa: E402

VOCAB, MIN_FREQUENCY, SPECIAL = 1000, 2, "<|endoftext|>"
RESULT = os.path.join(HERE, "results", "scratch_bpe.json")


def lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or platform.machine()


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, round(time.perf_counter() - wall, 2), round(time.process_time() - cpu, 2)


def train_hf(texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        min_frequency=MIN_FREQUENCY,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N reviews only (default: all)")
    ap.add_argument("--out", default=RESULT)
    args = ap.parse_args(argv)

    cores = sorted(os.sched_getaffinity(0))
    if len(cores) != 1:
        print(f"warning: this process may run on cores {cores}; pin it to one (taskset -c 1 ...)", file=sys.stderr)
    texts = [row["text"] for row in sources.iter_nsmc(sources.resolve_data_dir(), limit=args.limit)]
    print(f"{len(texts):,} reviews; training HF tokenizers (RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}) ...")
    hf, hf_wall, hf_cpu = timed(lambda: train_hf(texts))
    print(f"  HF: {hf_cpu} CPU s, {hf_wall} s wall; training the scratch BPE ...", flush=True)
    mine, wall, cpu = timed(lambda: bpe.train(texts, VOCAB, [SPECIAL], MIN_FREQUENCY))
    print(f"  scratch: {cpu} CPU s, {wall} s wall")

    hf_merges = [
        tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in json.loads(hf.to_str())["model"]["merges"]
    ]
    sample = texts[:2000]
    out = {
        "name": "scratch_bpe",
        "reviews": len(texts),
        "all_reviews": args.limit == 0,
        "vocab_size": VOCAB,
        "min_frequency": MIN_FREQUENCY,
        "special_tokens": [SPECIAL],
        "merges": len(mine.merges),
        "merges_equal": mine.merges == hf_merges,
        "vocab_equal": mine.vocab == hf.get_vocab(),
        "ids_equal_on_first_2000_reviews": all(mine.encode(t) == hf.encode(t).ids for t in sample),
        "hf_train_cpu_s": hf_cpu,
        "hf_train_wall_s": hf_wall,
        "scratch_train_cpu_s": cpu,
        "scratch_train_wall_s": wall,
        "slowdown": round(cpu / hf_cpu, 1),
        "cpu": lscpu_model(),
        "python": platform.python_version(),
        "tokenizers_version": tokenizers.__version__,
        "pinned_cores": cores,
        "hf_threads": f"RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}",
        "note": "one process pinned to one core (taskset); both trainers single-threaded; slowdown = scratch / HF "
        "in CPU seconds (wall seconds also count other processes sharing the core)",
    }
    print(
        f"merges equal: {out['merges_equal']}, vocab equal: {out['vocab_equal']}; scratch is {out['slowdown']}x slower"
    )
    limit = f" --limit {args.limit}" if args.limit else ""
    write_result(
        args.out, out, f"taskset -c {','.join(map(str, cores))} .venv/bin/python benchmarks/scratch_bpe.py{limit}"
    )
    return 0 if out["merges_equal"] and out["vocab_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
