"""SFT examples and DPO preference pairs built from real labelled Korean data.

- Review writing (NSMC): "write a positive review" -> a real 9-10 rated review is chosen,
  a real 1-4 rated review rejected (and the mirror image for negative requests).
- Comment writing (korean-hate-speech): a comment labelled `none` is chosen over one
  labelled `hate` or `offensive`.
- Sentiment (NSMC): the correct label (긍정/부정) is chosen over the wrong one, so the
  aligned model keeps the fine-tuned skill instead of forgetting it.
"""

from __future__ import annotations

import random

from kollm import prompts
from kollm.finetuning.tasks import NSMC, rows_from


def _usable(text: str) -> bool:
    return 8 <= len(text) <= 120


def _reviews(rows, seed: int) -> dict[int, list[str]]:
    """Usable reviews by label (0 negative, 1 positive)."""
    by = {0: [], 1: []}
    for r in rows_from(NSMC, rows, seed):
        if _usable(r["text"]):
            by[r["label"]].append(r["text"])
    return by


def _comments(hate_rows) -> dict[str, list[str]]:
    by = {"clean": [], "toxic": []}
    for r in hate_rows:
        if _usable(r["text"]):
            by["clean" if r["hate"] == "none" else "toxic"].append(r["text"])
    return by


KINDS = ["positive_review", "negative_review", "clean_comment", "sentiment_label"]


def _triples(nsmc_rows, hate_rows, n: int, seed: int):
    """(kind, prompt, preferred text, dispreferred text), cycling through the kinds."""
    rng = random.Random(seed)
    reviews, comments = _reviews(nsmc_rows, seed), _comments(hate_rows)
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        if kind == "positive_review":
            yield kind, prompts.WRITE_POSITIVE_REVIEW, rng.choice(reviews[1]), rng.choice(reviews[0])
        elif kind == "negative_review":
            yield kind, prompts.WRITE_NEGATIVE_REVIEW, rng.choice(reviews[0]), rng.choice(reviews[1])
        elif kind == "clean_comment":
            yield kind, prompts.WRITE_COMMENT, rng.choice(comments["clean"]), rng.choice(comments["toxic"])
        else:
            label, answers = rng.randrange(2), prompts.SENTIMENT_LABELS
            yield kind, prompts.SENTIMENT_INSTRUCTION + rng.choice(reviews[label]), answers[label], answers[1 - label]


def sft_examples(nsmc_rows, hate_rows, n: int, seed: int) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": good}]}
            for _, prompt, good, _ in _triples(nsmc_rows, hate_rows, n, seed)]


def dpo_pairs(nsmc_rows, hate_rows, n: int, seed: int) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": prompt}], "chosen": [{"role": "assistant", "content": good}],
             "rejected": [{"role": "assistant", "content": bad}], "kind": kind}
            for kind, prompt, good, bad in _triples(nsmc_rows, hate_rows, n, seed)]
