"""Byte-fallback tokens may only spell valid UTF-8: what keeps U+FFFD out of every answer.

A byte-fallback tokenizer (kollm's BPEs and SentencePiece models) spells a character it has no
token for as raw bytes, `<0xEC><0x98><0x81>` for 영. A small model samples those byte tokens in
any order: a lead byte followed by a word, a lone continuation byte. Decoded, that is U+FFFD.
The engine asks `Utf8Guard` which tokens may come next in each row (the UTF-8 grammar of RFC 3629,
overlong forms and surrogates included), so the model chooses among the ones that spell text.
Tokenizers without byte tokens (byte-level BPE is valid UTF-8 only as a whole word) are left as
they are: `TextStream` still holds half a character back.
"""

from __future__ import annotations

import torch

from kollm.tokenization.hf_bpe import BYTE_TOKENS  # <0x00>..<0xFF>, as SentencePiece spells them

ANY = (0x80, 0xBF)
# the first continuation byte's range after each lead byte (RFC 3629, section 4); the others take ANY
_FIRST = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}


def after(byte: int) -> tuple[int, tuple[int, int]]:
    """(continuation bytes still needed, the range of the next one) after a lead or ASCII byte."""
    if byte < 0x80:
        return 0, ANY
    if 0xC2 <= byte <= 0xDF:
        return 1, ANY
    if 0xE0 <= byte <= 0xEF:
        return 2, _FIRST.get(byte, ANY)
    if 0xF0 <= byte <= 0xF4:
        return 3, _FIRST.get(byte, ANY)
    raise ValueError(f"0x{byte:02X} cannot start a UTF-8 character")


class Utf8Guard:
    """Per-token byte values of a tokenizer's `<0xNN>` tokens and, per row, where in a character it is."""

    def __init__(self, tokenizer, vocab: int):
        self.byte = torch.full((vocab,), -1, dtype=torch.long)
        ids = tokenizer.get_vocab()
        for byte, token in enumerate(BYTE_TOKENS):
            if ids.get(token, vocab) < vocab:
                self.byte[ids[token]] = byte
        self.active = bool((self.byte >= 0).any())
        b = self.byte
        # between characters: no continuation byte, no byte that starts nothing (C0, C1, F5-FF)
        self.between = ((b >= 0x80) & (b <= 0xBF)) | (b == 0xC0) | (b == 0xC1) | (b >= 0xF5)

    def banned(self, state: tuple[int, tuple[int, int]]) -> torch.Tensor:
        """Tokens that may not come next: [vocab] bool."""
        need, (lo, hi) = state
        if need == 0:
            return self.between
        return ~((self.byte >= lo) & (self.byte <= hi))  # the character's next byte, nothing else (not </s>)

    def advance(self, state: tuple[int, tuple[int, int]], token: int) -> tuple[int, tuple[int, int]]:
        byte = int(self.byte[token]) if self.active else -1
        if byte < 0:
            return 0, ANY
        need, _ = state
        return (need - 1, ANY) if need else after(byte)
