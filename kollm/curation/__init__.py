"""Korean curation building blocks (stage `curate`): plain functions, text in, score or text out.

    normalize, hangul_ratio, jamo_ratio, char_run_ratio, ...   Korean quality signals (korean)
    redact                                                     PII: RRN, phone, e-mail, account (pii)
    MinHasher, find_duplicates                                 near-duplicates (minhash)
    CharNgramClassifier                                        the toxicity filter (toxicity)

`curator_pipelines/` wraps them as NeMo Curator stages; they are kept free of Curator so they can be
unit-tested and reused. Config: `curate.*` (config).
"""

from kollm.core.lazy import public_api
from kollm.curation.config import CurateConfig as CurateConfig

__getattr__, __dir__ = public_api(
    __name__,
    {
        "korean": "normalize hangul_ratio hangul_letter_ratio jamo_ratio char_run_ratio repeated_ngram_ratio url_count "
        "eojeol_count char_length is_boilerplate",
        "pii": "redact",
        "minhash": "MinHasher MinHashParams find_duplicates",
        "toxicity": "CharNgramClassifier",
    },
    submodules="toxicity",
    eager=("CurateConfig",),
)
