"""The curate stage's settings: the filters' thresholds, the deduplication, how it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CurateExecutor = Literal["inprocess", "ray"]
OutputFormat = Literal["jsonl", "parquet"]
FuzzyBackend = Literal["auto", "cpu", "gpu"]


@dataclass
class CurateConfig:
    """Korean curation (curator_pipelines/): thresholds chosen from the corpus histograms."""

    executor: CurateExecutor = "inprocess"  # ray: Curator's RayDataExecutor on this machine
    workers: int = 0  # inprocess: worker processes over shards; 0 = one per CPU, 1 = this process only
    ray_cpus_per_stage: float = 0.5  # fractional: whole-CPU stages deadlock Ray on 2 cores
    shard_docs: int = 50_000  # lines per shard: the unit of parallelism and of resume
    output_format: OutputFormat = "jsonl"
    min_chars: int = 4  # non-space characters
    max_chars: int = 2000
    min_eojeol: int = 1
    max_eojeol: int = 500
    min_hangul_ratio: float = 0.4  # Hangul share of non-space characters
    max_jamo_ratio: float = 0.5  # bare ㅋ/ㅠ/ㅇ share of Hangul
    max_char_run_ratio: float = 0.5  # share of characters inside runs of >= 4 identical ones
    max_repeated_ngram_ratio: float = 0.5  # duplicate character 3-grams
    max_urls: int = 0
    min_langid_score: float = 0.5  # fastText lid.176 confidence that the text is Korean
    max_toxicity: float = 0.9  # classifier P(toxic); dev precision 1.0 at 0.9
    fuzzy_dedup: bool = True
    fuzzy_backend: FuzzyBackend = "auto"  # cpu: kollm MinHash; gpu: Curator's cuDF workflow; auto: gpu if cuDF imports
    minhash_ngram: int = 3  # character shingles of the key without spaces/punctuation
    minhash_bands: int = 20
    minhash_rows: int = 4
    jaccard_threshold: float = 0.6
    fuzzy_min_chars: int = 10
