"""Korean-aware text scores. Each function takes NFC text and returns a number.

Why not Curator's stock heuristics: they count ASCII alphanumerics (all of Hangul is
"non-alphanumeric" to them), split words on spaces (Korean eojeol carry particles, so
word-length limits written for English misfire) and know nothing of compatibility jamo
(ㅋㅋ, ㅠㅠ), the commonest noise in Korean web text.
"""

from __future__ import annotations

import re
import unicodedata

SPACES = re.compile(r"\s+")
URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w.-]+\.(?:com|net|org|co\.kr|ne\.kr|or\.kr|kr)\b(?:/\S*)?", re.IGNORECASE)
# one letter 4+ times in a row: ㅋㅋㅋㅋ, ㅠㅠㅠㅠ, 카카카카. Punctuation runs ("....", "~~~~") are
# how many real reviews end, so they do not count.
RUN4 = re.compile(r"(\w)\1{3,}")
# Machine-written lines that carry no text of the author's own (NSMC has thousands).
BOILERPLATE = re.compile(r"^(?:종합 평점은 \d+점 드립니다\.?|스포일러가 포함된 감상평입니다\.?.*)$")


def normalize(text: str) -> str:
    """NFC (composes conjoining jamo into syllables, so ㅎ+ㅏ+ㄴ == 한) and collapse whitespace."""
    return SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


# The Hangul blocks, as regex character-class ranges: the one definition every module uses
SYLLABLES = "\uac00-\ud7a3"  # precomposed syllables (한)
COMPATIBILITY_JAMO = "\u3130-\u318f"  # standalone letters as typed in chat (ㅋ, ㅠ)
# + conjoining jamo and jamo extended A/B (left over where NFC cannot compose them)
HANGUL_CLASS = f"{SYLLABLES}\u1100-\u11ff{COMPATIBILITY_JAMO}\ua960-\ua97f\ud7b0-\ud7ff"
HANGUL = re.compile(f"[{HANGUL_CLASS}]")
NOT_HANGUL = re.compile(f"[^{HANGUL_CLASS}]+")
NOT_JAMO = re.compile(f"[^{COMPATIBILITY_JAMO}]+")
NOT_WORD = re.compile(r"[\W_]+")


def is_hangul(ch: str) -> bool:
    return bool(HANGUL.fullmatch(ch))


def char_length(text: str) -> int:
    """Characters that are not whitespace (Korean spacing is inconsistent; don't count it)."""
    return len(SPACES.sub("", text))


def eojeol_count(text: str) -> int:
    """Space-separated units (어절): a noun plus its particles is one eojeol, not one word."""
    return len(text.split())


def hangul_ratio(text: str) -> float:
    """Share of non-space characters that are Hangul (syllables or jamo)."""
    n = char_length(text)
    return len(NOT_HANGUL.sub("", text)) / n if n else 0.0


def hangul_letter_ratio(text: str) -> float:
    """Share of letters and digits (punctuation, symbols and spaces aside) that are Hangul."""
    letters = len(NOT_WORD.sub("", text))
    return len(NOT_HANGUL.sub("", text)) / letters if letters else 0.0


def jamo_ratio(text: str) -> float:
    """Share of Hangul characters that are bare compatibility jamo: ㅋㅋㅋ / ㅠㅠ / ㅇㅇ noise."""
    hangul = NOT_HANGUL.sub("", text)
    return len(NOT_JAMO.sub("", hangul)) / len(hangul) if hangul else 0.0


def char_run_ratio(text: str) -> float:
    """Share of non-space characters inside runs of 4+ identical letters (jamo, syllables, Latin)."""
    n = char_length(text)
    return sum(len(m.group(0)) for m in RUN4.finditer(text.replace(" ", ""))) / n if n else 0.0


def repeated_ngram_ratio(text: str, n: int = 3) -> float:
    """1 - unique/total over character n-grams of the text without spaces.

    Catches repeated syllable groups ("재밌다재밌다재밌다", "good good good") that a run filter
    misses; 0 for texts too short to have two n-grams.
    """
    s = text.replace(" ", "")
    total = len(s) - n + 1
    if total < 2:
        return 0.0
    return 1.0 - len({s[i : i + n] for i in range(total)}) / total


def url_count(text: str) -> int:
    return len(URL.findall(text))


def is_boilerplate(text: str) -> bool:
    return bool(BOILERPLATE.match(text))
