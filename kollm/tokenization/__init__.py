"""Korean tokenizers trained from scratch, all saved as HF tokenizers (`tokenizer.json`) that
`AutoTokenizer.from_pretrained(dir)` loads, with the same special tokens and chat template.

    tok = tokenization.train("spm_unigram", texts, vocab_size=8000)   # -> PreTrainedTokenizerFast
    tok.save_pretrained(out)

The kinds (`tokenizer.kind`), each one trainer module each here (hf_bpe, spm, jamo, kiwi):
    char            one token per character (syllable) + byte fallback: the no-merges baseline
    bpe_metaspace   HF BPE on ▁-marked words (SentencePiece-style spacing); the default
    bpe_bytelevel   HF byte-level BPE (GPT-2 / Llama 3 style): no UNK ever, Hangul costs 3 bytes
    spm_bpe         SentencePiece BPE, byte fallback, identity normalisation
    spm_unigram     SentencePiece unigram, byte fallback, identity normalisation
    jamo_bpe        BPE over NFD jamo (ㄱ+ㅏ+ㄴ for 간); `jamo.to_syllables` is the exact way back
    kiwi_bpe        Metaspace BPE whose merges never cross a Kiwi morpheme boundary

The measures the comparison reports (chars/token, tokens/eojeol, byte-fallback/UNK rate, round trip)
are `text_measures`.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable

from kollm.tokenization.config import TokenizerConfig, TokenizerKind
from kollm.tokenization.special import (
    ASSISTANT,
    BOS,
    CHAT_TEMPLATE,
    EOS,
    PAD,
    ROLE_TOKENS,
    SPECIAL_TOKENS,
    SYSTEM,
    UNK,
    USER,
    as_hf,
)

KINDS: tuple[str, ...] = typing.get_args(TokenizerKind)
__all__ = [
    "TokenizerConfig",
    "TokenizerKind",
    "KINDS",
    "train",
    "train_bpe",
    "text_measures",
    "as_hf",
    "to_syllables",
    "PAD",
    "UNK",
    "BOS",
    "EOS",
    "SYSTEM",
    "USER",
    "ASSISTANT",
    "ROLE_TOKENS",
    "SPECIAL_TOKENS",
    "CHAT_TEMPLATE",
]


def to_syllables(text: str) -> str:
    """Jamo back to syllables: the exact way back from a `jamo_bpe` tokenizer's text."""
    from kollm.tokenization.jamo import to_syllables as jamo_to_syllables

    return jamo_to_syllables(text)


def train(kind: str, texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """Train a tokenizer of `kind` on `texts`; returns a `PreTrainedTokenizerFast`."""
    from kollm.tokenization import hf_bpe, jamo, kiwi, spm

    trainers = {
        "char": hf_bpe.train_char,
        "bpe_metaspace": hf_bpe.train_metaspace,
        "bpe_bytelevel": hf_bpe.train_bytelevel,
        "spm_bpe": spm.train_bpe,
        "spm_unigram": spm.train_unigram,
        "jamo_bpe": jamo.train,
        "kiwi_bpe": kiwi.train,
    }
    if kind not in trainers:
        raise ValueError(f"tokenizer.kind must be one of {KINDS}, not {kind!r}")
    return as_hf(trainers[kind](texts, vocab_size, min_frequency))


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """The default kind, `bpe_metaspace`."""
    return train("bpe_metaspace", texts, vocab_size, min_frequency)


# ---- measures ---------------------------------------------------------------------------


def text_measures(tokenizer, texts: list[str], undo=None) -> dict:
    """What the comparison reports about a tokenizer on `texts`, from one encoding of them:
    - chars_per_token, and tokens_per_eojeol (per space-separated word, the unit Korean papers report);
    - unk_rate, and byte_fallback_rate: the share of tokens that are raw bytes (<0xNN>) or UNK, i.e. text
      the vocabulary does not cover (byte-level BPE has no such tokens: every token is bytes, so 0);
    - roundtrip_rate: the share of texts with decode(encode(x)) == x exactly; with `undo` (e.g.
      jamo.to_syllables, applied to the decoded text) also roundtrip_rate_undone."""
    from kollm.tokenization.hf_bpe import BYTE_TOKENS

    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    n_tokens = max(1, sum(map(len, ids)))
    vocab = tokenizer.get_vocab()  # a fresh dict of the whole vocabulary on every call: build it once
    fallback = {vocab[t] for t in BYTE_TOKENS if t in vocab} | {tokenizer.unk_token_id}
    decoded = tokenizer.batch_decode(ids)
    out = {
        "chars_per_token": sum(map(len, texts)) / n_tokens,
        "tokens_per_eojeol": n_tokens / max(1, sum(len(t.split()) for t in texts)),
        "unk_rate": sum(i.count(tokenizer.unk_token_id) for i in ids) / n_tokens,
        "byte_fallback_rate": sum(x in fallback for i in ids for x in i) / n_tokens,
        "roundtrip_rate": sum(d == t for d, t in zip(decoded, texts)) / max(1, len(texts)),
    }
    if undo is not None:
        out["roundtrip_rate_undone"] = sum(undo(d) == t for d, t in zip(decoded, texts)) / max(1, len(texts))
    return out
