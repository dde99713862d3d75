"""The data stage's settings: where the reviews come from and how they are split."""

from __future__ import annotations

from dataclasses import dataclass

from kollm.core.errors import KollmError


@dataclass
class DataConfig:
    data_dir: str = ""  # empty: $KOLLM_DATA_DIR, ../shared/data, then the download cache
    max_reviews: int = 0  # 0 = every NSMC review
    val_fraction: float = 0.05  # of movies, by movie_id
    test_fraction: float = 0.05
    max_comments: int = 0  # unlabeled web comments for pretraining; 0 = all
    # share of the pretraining documents kept, the same share of every source, chosen by a hash of the
    # document id; the labelled splits (fine-tuning, evaluation, baselines) are never sampled
    corpus_fraction: float = 1.0

    def check(self) -> None:
        if not 0 < self.corpus_fraction <= 1:
            raise KollmError(f"data.corpus_fraction={self.corpus_fraction}: a share of the documents, in (0, 1]")
