"""The tokenizer stage's settings: which kind of tokenizer (kollm.tokenization says what each is) and its size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TokenizerKind = Literal["char", "bpe_metaspace", "bpe_bytelevel", "spm_bpe", "spm_unigram", "jamo_bpe", "kiwi_bpe"]


@dataclass
class TokenizerConfig:
    kind: TokenizerKind = "bpe_metaspace"
    vocab_size: int = 8000  # every model config takes its vocabulary from the trained tokenizer
    min_frequency: int = 2
    max_train_docs: int = 0  # 0 = all curated documents
