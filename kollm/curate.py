"""Korean-aware cleaning: NFC normalisation, quality filters with reasons, exact dedup.

Every input document ends up in exactly one place: kept, or removed with a reason.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from kollm.config import CurateConfig

URL = re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)
SPACES = re.compile(r"\s+")
RUN4 = re.compile(r"(.)\1{3,}")  # a character repeated 4+ times: ㅋㅋㅋㅋ, ㅠㅠㅠㅠ, !!!!


def normalize(text: str) -> str:
    """NFC (composes jamo sequences into syllables) and collapse whitespace."""
    return SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


def is_hangul(ch: str) -> bool:
    o = ord(ch)
    return (0xAC00 <= o <= 0xD7A3  # syllables
            or 0x1100 <= o <= 0x11FF  # jamo
            or 0x3130 <= o <= 0x318F)  # compatibility jamo (ㅋ, ㅠ)


def hangul_ratio(text: str) -> float:
    chars = [c for c in text if not c.isspace()]
    return sum(is_hangul(c) for c in chars) / len(chars) if chars else 0.0


def repeat_ratio(text: str) -> float:
    """Share of characters that sit inside runs of 4+ identical characters."""
    return sum(len(m.group(0)) for m in RUN4.finditer(text)) / len(text) if text else 0.0


def removal_reason(text: str, cfg: CurateConfig) -> str | None:
    if not text:
        return "empty"
    if len(text) < cfg.min_chars:
        return "too_short"
    if len(text) > cfg.max_chars:
        return "too_long"
    if cfg.drop_urls and URL.search(text):
        return "url"
    if hangul_ratio(text) < cfg.min_hangul_ratio:
        return "low_hangul_ratio"
    if repeat_ratio(text) > cfg.max_repeat_ratio:
        return "repetition"
    return None


def dedup_key(text: str) -> str:
    # Exact duplicates modulo spacing: Korean reviews often differ only in 띄어쓰기.
    return hashlib.md5(text.replace(" ", "").encode("utf-8")).hexdigest()


class Curator:
    """Stateful filter over a stream (dedup remembers what it has kept)."""

    def __init__(self, cfg: CurateConfig):
        self.cfg = cfg
        self.seen: dict[str, str] = {}

    def __call__(self, doc: dict) -> tuple[dict, str | None]:
        """Returns (document with normalised text, removal reason or None)."""
        text = normalize(doc.get("text") or "")
        out = {**doc, "text": text}
        reason = removal_reason(text, self.cfg)
        if reason:
            return out, reason
        key = dedup_key(text)
        if key in self.seen:
            out["duplicate_of"] = self.seen[key]
            return out, "exact_duplicate"
        self.seen[key] = doc["id"]
        return out, None
