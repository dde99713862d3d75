"""A Korean toxicity score: character n-gram logistic regression on korean_hate_speech.

Trained on `labeled_train` (hate or offensive = 1, none = 0), reported on `labeled_dev`.
Character n-grams because Korean insults are often spelled creatively (ㅅㅂ, 시1발) and
attach particles; a hashing vectorizer because it has no vocabulary to store, so the
model is two arrays in a `.npz` (loaded with allow_pickle=False, never a pickle).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

N_FEATURES = 2**20
NGRAMS = (1, 4)


def _vectorizer():
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer="char_wb", ngram_range=NGRAMS, n_features=N_FEATURES, alternate_sign=False, norm="l2"
    )


def label(row: dict) -> int:
    return int(row["hate"] in ("hate", "offensive"))


class CharNgramClassifier:
    """A binary classifier on hashed character n-grams (toxicity here; the alignment stage fits one for
    sentiment the same way): P(label 1) per text."""

    def __init__(self, coef: np.ndarray, intercept: float):
        self.coef = coef.astype(np.float32)
        self.intercept = float(intercept)
        self._vec = _vectorizer()

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """P(toxic) per text, for a whole batch at once (one sparse mat-vec)."""
        if len(texts) == 0:
            return np.zeros(0, dtype=np.float32)
        z = self._vec.transform(texts) @ self.coef + self.intercept
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def save(self, path: str) -> None:
        tmp = path + ".tmp.npz"
        np.savez_compressed(tmp, coef=self.coef, intercept=np.array([self.intercept]))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> CharNgramClassifier:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["coef"], float(z["intercept"][0]))


def fit(texts: Sequence[str], labels: Sequence[int], seed: int = 0, c: float = 4.0) -> CharNgramClassifier:
    """Logistic regression on the hashed character n-grams of texts (labels 0/1)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(
        _vectorizer().transform(texts), np.asarray(labels)
    )
    return CharNgramClassifier(clf.coef_[0], clf.intercept_[0])


def train(train_rows: Iterable[dict], dev_rows: Iterable[dict], seed: int = 0) -> tuple[CharNgramClassifier, dict]:
    """Fit on the train rows, report F1/precision/recall on the dev rows."""
    from sklearn.metrics import f1_score, precision_score, recall_score

    train_rows, dev_rows = list(train_rows), list(dev_rows)
    model = fit([r["text"] for r in train_rows], [label(r) for r in train_rows], seed)
    dev_y = np.array([label(r) for r in dev_rows])
    p = model.score([r["text"] for r in dev_rows])
    pred = (p >= 0.5).astype(int)
    metrics: dict[str, float | None] = {
        "dev_f1": round(float(f1_score(dev_y, pred)), 4),
        "dev_precision": round(float(precision_score(dev_y, pred)), 4),
        "dev_recall": round(float(recall_score(dev_y, pred)), 4),
        "dev_positive_rate": round(float(dev_y.mean()), 4),
        "train_examples": len(train_rows),
        "dev_examples": len(dev_rows),
    }
    # precision of the score at stricter cut-offs: what a filter threshold would remove
    for cut in (0.8, 0.9, 0.95):
        sel = p >= cut
        metrics[f"dev_precision_at_{cut}"] = round(float(dev_y[sel].mean()), 4) if sel.any() else None
        metrics[f"dev_recall_at_{cut}"] = round(float(sel[dev_y == 1].mean()), 4)
    return model, metrics
