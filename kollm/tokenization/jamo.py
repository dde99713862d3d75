"""BPE over jamo: each Hangul syllable decomposed (NFD) into its leading consonant, vowel and optional
final consonant (간 -> ᄀ+ᅡ+ᆫ), so merges can share a final consonant across syllables (the ㄴ of
했던/갔던/봤던). HF tokenizers have no composing decoder: decoded text comes back as NFD jamo, and
`to_syllables` (NFC) is the exact way back for text that was NFC (the curate stage's output is).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from tokenizers import Tokenizer, normalizers

from kollm.tokenization.hf_bpe import train_metaspace


def to_syllables(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def train(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    # the jamo alphabet is small (19 + 21 + 27 conjoining jamo): most of the vocabulary goes to merges
    return train_metaspace(
        texts, vocab_size, min_frequency, normalizer=normalizers.NFD(), alphabet=min(1000, vocab_size // 4)
    )
