"""SFT examples and DPO preference pairs built from real labelled Korean data.

- Review writing (NSMC): "write a positive review" -> a real 9-10 rated review is chosen,
  a real 1-4 rated review rejected (and the mirror image for negative requests).
- Comment writing (korean-hate-speech): a comment labelled `none` is chosen over one
  labelled `hate` or `offensive`.
"""

from __future__ import annotations

import random

from kollm.sentiment import labelled

POSITIVE = "이 영화에 대한 긍정적인 리뷰를 써 주세요."
NEGATIVE = "이 영화에 대한 부정적인 리뷰를 써 주세요."
COMMENT = "연예 기사에 댓글을 달아 주세요."


def _usable(text: str) -> bool:
    return 8 <= len(text) <= 120


def _reviews(rows, seed: int) -> dict[int, list[str]]:
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


def sft_examples(nsmc_rows, hate_rows, n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    reviews, comments = _reviews(nsmc_rows, seed), _comments(hate_rows)
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            prompt, answer = POSITIVE, rng.choice(reviews[1])
        elif kind == 1:
            prompt, answer = NEGATIVE, rng.choice(reviews[0])
        else:
            prompt, answer = COMMENT, rng.choice(comments["clean"])
        out.append({"prompt": [{"role": "user", "content": prompt}],
                    "completion": [{"role": "assistant", "content": answer}]})
    return out


def dpo_pairs(nsmc_rows, hate_rows, n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    reviews, comments = _reviews(nsmc_rows, seed), _comments(hate_rows)
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            prompt, chosen, rejected = POSITIVE, rng.choice(reviews[1]), rng.choice(reviews[0])
        elif kind == 1:
            prompt, chosen, rejected = NEGATIVE, rng.choice(reviews[0]), rng.choice(reviews[1])
        else:
            prompt, chosen, rejected = COMMENT, rng.choice(comments["clean"]), rng.choice(comments["toxic"])
        out.append({"prompt": [{"role": "user", "content": prompt}],
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                    "kind": ["positive_review", "negative_review", "clean_comment"][kind]})
    return out
