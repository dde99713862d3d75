"""Train the Korean tokenizer (`tokenizer.kind`) on the curated corpus; save it as a HF tokenizer with a chat template."""

from __future__ import annotations

import itertools
import os

from kollm.config import PipelineConfig
from kollm.io import read_jsonl
from kollm.tokenization import jamo
from kollm.tokenizer import (byte_fallback_rate, chars_per_token, roundtrip_rate, tokens_per_eojeol, train,
                             unk_rate)
from stages.base import inputs


def run(cfg: PipelineConfig, out: str) -> dict:
    curated = inputs(cfg, "curate")
    docs = (d["text"] for d in read_jsonl(curated["corpus"]))
    if cfg.tokenizer.max_train_docs:
        docs = itertools.islice(docs, cfg.tokenizer.max_train_docs)
    tokenizer = train(cfg.tokenizer.kind, docs, cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)
    tokenizer.save_pretrained(out)
    heldout = [d["text"] for d in itertools.islice(read_jsonl(curated["heldout"]), 5000)]
    undo = jamo.to_syllables if cfg.tokenizer.kind == "jamo_bpe" else None
    return {
        "outputs": {"tokenizer_dir": os.path.abspath(out)},
        "counts": {"vocab_size": len(tokenizer)},
        "metrics": {"kind": cfg.tokenizer.kind,
                    "heldout_chars_per_token": round(chars_per_token(tokenizer, heldout), 3),
                    "heldout_tokens_per_eojeol": round(tokens_per_eojeol(tokenizer, heldout), 3),
                    "heldout_unk_rate": round(unk_rate(tokenizer, heldout), 5),
                    "heldout_byte_fallback_rate": round(byte_fallback_rate(tokenizer, heldout), 5),
                    "heldout_roundtrip_rate": round(roundtrip_rate(tokenizer, heldout[:1000], undo), 4)},
    }
