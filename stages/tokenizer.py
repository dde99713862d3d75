"""Train a Korean BPE on the curated corpus; save it as a HF tokenizer with a chat template."""

from __future__ import annotations

import itertools
import os

from kollm.config import PipelineConfig
from kollm.io import read_jsonl
from kollm.tokenizer import chars_per_token, train_bpe, unk_rate
from stages.base import inputs


def run(cfg: PipelineConfig, out: str) -> dict:
    curated = inputs(cfg, "curate")
    docs = (d["text"] for d in read_jsonl(curated["corpus"]))
    if cfg.tokenizer.max_train_docs:
        docs = itertools.islice(docs, cfg.tokenizer.max_train_docs)
    tokenizer = train_bpe(docs, cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)
    tokenizer.save_pretrained(out)
    heldout = [d["text"] for d in itertools.islice(read_jsonl(curated["heldout"]), 5000)]
    sample = heldout[0] if heldout else "한국어 문장"
    roundtrip = tokenizer.decode(tokenizer(sample, add_special_tokens=False)["input_ids"]) == sample
    return {
        "outputs": {"tokenizer_dir": os.path.abspath(out)},
        "counts": {"vocab_size": len(tokenizer)},
        "metrics": {"heldout_chars_per_token": round(chars_per_token(tokenizer, heldout), 3),
                    "heldout_unk_rate": round(unk_rate(tokenizer, heldout), 5),
                    "roundtrip_ok": roundtrip},
    }
