"""Korean tokenizers trained from scratch, all saved as HF tokenizers (`tokenizer.json`) that
`AutoTokenizer.from_pretrained(dir)` loads, with the same special tokens and chat template.

    tok = tokenizer.train("spm_unigram", texts, vocab_size=8000)   # -> PreTrainedTokenizerFast
    tok.save_pretrained(out)

The kinds (`tokenizer.kind`), each trained in kollm/tokenization/:
    char            one token per character (syllable) + byte fallback: the no-merges baseline
    bpe_metaspace   HF BPE on ▁-marked words (SentencePiece-style spacing); the default
    bpe_bytelevel   HF byte-level BPE (GPT-2 / Llama 3 style): no UNK ever, Hangul costs 3 bytes
    spm_bpe         SentencePiece BPE, byte fallback, identity normalisation
    spm_unigram     SentencePiece unigram, byte fallback, identity normalisation
    jamo_bpe        BPE over NFD jamo (ㄱ+ㅏ+ㄴ for 간); `jamo.to_syllables` is the exact way back
    kiwi_bpe        Metaspace BPE whose merges never cross a Kiwi morpheme boundary

The measures the comparison reports (chars/token, tokens/eojeol, byte-fallback/UNK rate, round trip)
are at the end of this file.
"""

from __future__ import annotations

import typing
from typing import Iterable

from kollm.config import TokenizerKind

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SYSTEM, USER, ASSISTANT = "<|system|>", "<|user|>", "<|assistant|>"
ROLE_TOKENS = [SYSTEM, USER, ASSISTANT]
SPECIAL_TOKENS = [PAD, UNK, BOS, EOS, *ROLE_TOKENS]  # ids 0..6 in every kind

# Each turn ends with EOS, so generation stops at the end of the assistant's turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '" + EOS + "' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '" + ASSISTANT + "' }}{% endif %}"
)

KINDS: tuple[str, ...] = typing.get_args(TokenizerKind)


def as_hf(tok):
    """A `tokenizers.Tokenizer` as a `PreTrainedTokenizerFast` with kollm's special tokens and chat template."""
    from transformers import PreTrainedTokenizerFast

    for i, t in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(t) != i:
            raise ValueError(f"special token {t!r} has id {tok.token_to_id(t)}, expected {i}")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, unk_token=UNK, bos_token=BOS,
                                   eos_token=EOS, additional_special_tokens=ROLE_TOKENS)
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 1_000_000
    return fast


def train(kind: str, texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """Train a tokenizer of `kind` on `texts`; returns a `PreTrainedTokenizerFast`."""
    from kollm.tokenization import hf_bpe, jamo, kiwi, spm

    trainers = {"char": hf_bpe.train_char, "bpe_metaspace": hf_bpe.train_metaspace,
                "bpe_bytelevel": hf_bpe.train_bytelevel, "spm_bpe": spm.train_bpe, "spm_unigram": spm.train_unigram,
                "jamo_bpe": jamo.train, "kiwi_bpe": kiwi.train}
    if kind not in trainers:
        raise ValueError(f"tokenizer.kind must be one of {KINDS}, not {kind!r}")
    return as_hf(trainers[kind](texts, vocab_size, min_frequency))


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """The default kind, `bpe_metaspace`."""
    return train("bpe_metaspace", texts, vocab_size, min_frequency)


# ---- measures ---------------------------------------------------------------------------

def _ids(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def chars_per_token(tokenizer, texts: list[str]) -> float:
    return sum(len(t) for t in texts) / max(1, sum(len(i) for i in _ids(tokenizer, texts)))


def tokens_per_eojeol(tokenizer, texts: list[str]) -> float:
    """Tokens per space-separated word (어절): the unit Korean papers report."""
    return sum(len(i) for i in _ids(tokenizer, texts)) / max(1, sum(len(t.split()) for t in texts))


def unk_rate(tokenizer, texts: list[str]) -> float:
    ids = _ids(tokenizer, texts)
    return sum(i.count(tokenizer.unk_token_id) for i in ids) / max(1, sum(len(i) for i in ids))


def byte_fallback_rate(tokenizer, texts: list[str]) -> float:
    """Share of tokens that are raw bytes (<0xNN>) or UNK: text the vocabulary does not cover.
    Byte-level BPE has no byte-fallback tokens (every token is bytes), so it scores 0."""
    vocab = tokenizer.get_vocab()
    fallback = {i for t, i in vocab.items() if len(t) == 6 and t.startswith("<0x") and t.endswith(">")}
    fallback.add(tokenizer.unk_token_id)
    ids = _ids(tokenizer, texts)
    return sum(sum(1 for x in i if x in fallback) for i in ids) / max(1, sum(len(i) for i in ids))


def roundtrip_rate(tokenizer, texts: list[str], undo=None) -> float:
    """Share of texts with decode(encode(x)) == x exactly (`undo` maps decoded text back first, e.g.
    jamo.to_syllables)."""
    ok = 0
    for t, i in zip(texts, _ids(tokenizer, texts)):
        out = tokenizer.decode(i)
        ok += (undo(out) if undo else out) == t
    return ok / max(1, len(texts))
