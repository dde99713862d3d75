"""Train the Korean tokenizer (`tokenizer.kind`) on the curated corpus; save it as a HF tokenizer with a chat template."""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterable

from kollm.config import PipelineConfig
from kollm.core import read_jsonl
from kollm.tokenization import text_measures, to_syllables, train
from stages.base import Outputs, inputs
from stages.curate import CurateOutputs


@dataclasses.dataclass(frozen=True)
class TokenizerOutputs(Outputs):
    tokenizer_dir: str  # a HF tokenizer folder (AutoTokenizer.from_pretrained), with the chat template


def run(cfg: PipelineConfig, out: str) -> dict:
    curated = inputs(cfg, CurateOutputs)
    docs: Iterable[str] = (d["text"] for d in read_jsonl(curated.corpus))
    if cfg.tokenizer.max_train_docs:
        docs = itertools.islice(docs, cfg.tokenizer.max_train_docs)
    tokenizer = train(cfg.tokenizer.kind, docs, cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)
    tokenizer.save_pretrained(out)
    heldout = [d["text"] for d in itertools.islice(read_jsonl(curated.heldout), 5000)]
    undo = to_syllables if cfg.tokenizer.kind == "jamo_bpe" else None
    m = text_measures(tokenizer, heldout, undo)
    return {
        "outputs": TokenizerOutputs(tokenizer_dir=os.path.abspath(out)),
        "counts": {"vocab_size": len(tokenizer)},
        "metrics": {
            "kind": cfg.tokenizer.kind,
            "heldout_chars_per_token": round(m["chars_per_token"], 3),
            "heldout_tokens_per_eojeol": round(m["tokens_per_eojeol"], 3),
            "heldout_unk_rate": round(m["unk_rate"], 5),
            "heldout_byte_fallback_rate": round(m["byte_fallback_rate"], 5),
            # jamo's decoded text is NFD: the round trip that counts is the one back to syllables
            "heldout_roundtrip_rate": round(m.get("roundtrip_rate_undone", m["roundtrip_rate"]), 4),
        },
    }
