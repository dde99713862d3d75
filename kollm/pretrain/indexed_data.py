"""Tokenise a JSONL corpus into Megatron's indexed format (`<prefix>.bin` + `<prefix>.idx`).

One tokenisation serves both backends:
- megatron: `GPTDataset` reads the `.bin/.idx` pair (megatron-core's `IndexedDatasetBuilder`
  wrote it), one document per entry, each ending in the EOD token (`</s>`);
- torch: the `.bin` file alone is the packed token stream (documents back to back, EOD
  between them), memory-mapped by `load_tokens`.

The corpus is cut into line ranges tokenised by worker processes (each streams its range,
so memory is bounded by one batch per worker), every range into its own `.bin/.idx` with a
`.done` marker, then merged in order. A killed run keeps its finished ranges: rerunning
tokenises only what is missing. A `<prefix>.json` written last says the pair is complete.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from typing import Any

import numpy as np
from tqdm import tqdm

from kollm.core.errors import KollmError
from kollm.core.io import line_ranges, read_json, write_json


def document_text(doc: dict, rating_in_text: bool) -> str:
    if rating_in_text and doc.get("rating") is not None:
        return f"{doc['text']} 평점: {doc['rating']}"
    return doc["text"]


def token_dtype(vocab_size: int):
    # the rule megatron-core's DType.optimal_dtype applies when it reads the .idx back
    return np.uint16 if vocab_size < 65500 else np.int32


def _tokenize_range(job: dict) -> int:
    """Worker: one line range of the corpus -> <part>.bin/.idx, then <part>.done. Returns documents."""
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder
    from transformers import AutoTokenizer

    part = job["part"]
    tokenizer = AutoTokenizer.from_pretrained(job["tokenizer_dir"])
    eod = tokenizer.eos_token_id
    builder = IndexedDatasetBuilder(part + ".bin", dtype=token_dtype(len(tokenizer)))
    docs = 0
    with open(job["corpus"], "rb") as f:
        f.seek(job["start"])
        lines = f.read(job["end"] - job["start"]).decode("utf-8").splitlines()
    for i in range(0, len(lines), job["batch"]):
        texts = []
        for offset, line in enumerate(lines[i : i + job["batch"]]):
            if not line.strip():
                continue
            try:
                texts.append(document_text(json.loads(line), job["rating_in_text"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise KollmError(
                    f"{job['corpus']}:{job['first_line'] + i + offset}: not a JSON object with a 'text' field"
                ) from None
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            builder.add_document(np.asarray([*ids, eod]), [len(ids) + 1])
            docs += 1
    builder.finalize(part + ".idx")
    write_json(part + ".done", {"documents": docs})
    return docs


def is_complete(prefix: str) -> bool:
    return all(os.path.exists(prefix + ext) for ext in (".bin", ".idx", ".json"))


def build_indexed_dataset(
    corpus: str,
    tokenizer_dir: str,
    prefix: str,
    workers: int = 0,
    lines_per_range: int = 50_000,
    rating_in_text: bool = False,
    batch: int = 1000,
    progress: bool = True,
) -> dict:
    """Tokenise `corpus` into `prefix`.bin/.idx (+ .json summary); skips the work when complete."""
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder
    from transformers import AutoTokenizer

    if is_complete(prefix):
        return read_json(prefix + ".json")
    if not os.path.exists(corpus):
        raise KollmError(f"{corpus}: no such corpus file")
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    parts_dir = prefix + ".parts"
    os.makedirs(parts_dir, exist_ok=True)
    jobs: list[dict[str, Any]] = [
        {
            "corpus": corpus,
            "tokenizer_dir": tokenizer_dir,
            "start": s,
            "end": e,
            "first_line": first,
            "part": os.path.join(parts_dir, f"{n:05d}"),
            "rating_in_text": rating_in_text,
            "batch": batch,
        }
        for n, (s, e, first, _) in enumerate(line_ranges(corpus, lines_per_range))
    ]
    todo = [j for j in jobs if not os.path.exists(j["part"] + ".done")]
    workers = min(workers or os.cpu_count() or 1, max(1, len(todo)))
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(todo),
        desc="tokenize",
        unit="range",
        disable=not progress,
        mininterval=2,
    )
    if workers == 1:
        for job in todo:
            _tokenize_range(job)
            bar.update(1)
    elif todo:
        # a forked worker must not use the Rust tokenizer's thread pool: when the parent used it (it trained or
        # batch-encoded) under TOKENIZERS_PARALLELISM=true, the child's copy has no threads and hangs
        with mp.get_context("fork").Pool(
            workers, initializer=os.environ.__setitem__, initargs=("TOKENIZERS_PARALLELISM", "false")
        ) as pool:
            for _ in pool.imap_unordered(_tokenize_range, todo):
                bar.update(1)
    bar.close()
    # merge the ranges in corpus order
    builder = IndexedDatasetBuilder(prefix + ".bin", dtype=token_dtype(len(tokenizer)))
    for job in jobs:
        builder.add_index(job["part"])
    builder.finalize(prefix + ".idx")
    documents = sum(read_json(j["part"] + ".done")["documents"] for j in jobs)
    dtype = np.dtype(token_dtype(len(tokenizer)))
    summary = {
        "documents": documents,
        "tokens": os.path.getsize(prefix + ".bin") // dtype.itemsize,
        "dtype": dtype.name,
        "vocab_size": len(tokenizer),
        "eod_token_id": tokenizer.eos_token_id,
        "corpus": os.path.abspath(corpus),
    }
    write_json(prefix + ".json", summary)  # last: marks the pair complete
    for job in jobs:
        for ext in (".bin", ".idx", ".done"):
            os.unlink(job["part"] + ext)
    os.rmdir(parts_dir)
    return summary


def load_tokens(prefix: str) -> np.ndarray:
    """The packed token stream (the .bin file) for the torch backend."""
    if not is_complete(prefix):
        raise KollmError(f"{prefix}.bin/.idx/.json: incomplete tokenised data; rerun the tokenisation")
    meta = read_json(prefix + ".json")
    return np.memmap(prefix + ".bin", dtype=meta["dtype"], mode="r")
