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

from kollm.sentiment import INSTRUCTION, LABELS, labelled

POSITIVE = "이 영화에 대한 긍정적인 리뷰를 써 주세요."
NEGATIVE = "이 영화에 대한 부정적인 리뷰를 써 주세요."
COMMENT = "연예 기사에 댓글을 달아 주세요."


def _usable(text: str) -> bool:
    return 8 <= len(text) <= 120


def _reviews(rows, seed: int) -> dict[int, list[str]]:
    """Usable reviews by label (0 negative, 1 positive)."""
    by = {0: [], 1: []}
    for r in labelled(rows, seed, 0):
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
            yield kind, POSITIVE, rng.choice(reviews[1]), rng.choice(reviews[0])
        elif kind == "negative_review":
            yield kind, NEGATIVE, rng.choice(reviews[0]), rng.choice(reviews[1])
        elif kind == "clean_comment":
            yield kind, COMMENT, rng.choice(comments["clean"]), rng.choice(comments["toxic"])
        else:
            label = rng.randrange(2)
            yield kind, INSTRUCTION + rng.choice(reviews[label]), LABELS[label], LABELS[1 - label]


def sft_examples(nsmc_rows, hate_rows, n: int, seed: int) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": good}]}
            for _, prompt, good, _ in _triples(nsmc_rows, hate_rows, n, seed)]


def dpo_pairs(nsmc_rows, hate_rows, n: int, seed: int) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": prompt}], "chosen": [{"role": "assistant", "content": good}],
             "rejected": [{"role": "assistant", "content": bad}], "kind": kind}
            for kind, prompt, good, bad in _triples(nsmc_rows, hate_rows, n, seed)]
