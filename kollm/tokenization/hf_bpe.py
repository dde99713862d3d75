"""HF `tokenizers` trainers: Metaspace BPE (the default), byte-level BPE, and the character baseline."""

from __future__ import annotations

import collections
import json
import unicodedata
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from kollm.tokenization.special import SPECIAL_TOKENS, UNK

SPACE = "▁"
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]


def metaspace() -> pre_tokenizers.Metaspace:
    return pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always")


def train_metaspace(
    texts: Iterable[str],
    vocab_size: int,
    min_frequency: int = 2,
    pre_tokenizer=None,
    normalizer=None,
    alphabet: int | None = None,
) -> Tokenizer:
    """BPE on ▁-marked words: it round-trips Korean spacing (띄어쓰기) exactly and gave the best
    characters per token of the HF options on NSMC (platform-facts). At most half the vocabulary goes
    to single characters (Korean has thousands of syllables), so there is always room for merges.
    The last 256 ids are byte-fallback tokens: a character the vocabulary lacks (an emoji, a rare
    hanja) becomes its UTF-8 bytes instead of <unk>, so nothing a user typed is lost."""
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizer or normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizer or metaspace()
    room = max(len(SPECIAL_TOKENS) + 1, vocab_size - len(BYTE_TOKENS))
    texts = texts if isinstance(texts, list) else list(texts)  # read twice: the alphabet, then the merges
    chars = _alphabet(texts, tok, alphabet or min(2000, room // 2))
    trainer = trainers.BpeTrainer(
        vocab_size=room,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=chars,
        limit_alphabet=len(chars),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = model["vocab"]
    for b in BYTE_TOKENS:
        vocab.setdefault(b, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tok.model = models.BPE(vocab=vocab, merges=merges, unk_token=UNK, byte_fallback=True)
    tok.decoder = byte_fallback_decoder()
    return tok


def _alphabet(texts: list[str], tok: Tokenizer, limit: int) -> list[str]:
    """The `limit` most frequent characters of the normalised, pre-tokenised texts, ties broken by code point.
    HF's trainer cuts its alphabet at `limit_alphabet` breaking ties in hash order, so the same corpus gave a
    different vocabulary, and so a different model, in every process; given this one it keeps exactly it."""
    counts: collections.Counter = collections.Counter()
    for t in texts:
        for piece, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(t)):
            counts.update(piece)
    return [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def train_bytelevel(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """GPT-2-style byte-level BPE: every UTF-8 byte is in the alphabet, so nothing is ever unknown,
    but a Hangul syllable starts as 3 tokens and must be merged back."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def train_char(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """One token per character (a Hangul syllable is one character), the `vocab_size` most frequent ones;
    the rest fall back to their UTF-8 bytes. No merges: the baseline every other kind is compared to."""
    counts: collections.Counter[str] = collections.Counter()
    for t in texts:
        counts.update(unicodedata.normalize("NFC", t).replace(" ", SPACE))
    counts[SPACE] += 1  # every word starts with one
    room = max(0, vocab_size - len(SPECIAL_TOKENS) - len(BYTE_TOKENS))
    chars = [c for c, n in counts.most_common() if n >= min_frequency and c not in BYTE_TOKENS][:room]
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + BYTE_TOKENS + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK, byte_fallback=True))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = metaspace()
    tok.decoder = byte_fallback_decoder()
    tok.add_special_tokens(SPECIAL_TOKENS)
    return tok


def byte_fallback_decoder() -> decoders.Decoder:
    """▁ back to spaces, <0xNN> runs back to characters, the prepended space dropped (Llama's decoder)."""
    return decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
