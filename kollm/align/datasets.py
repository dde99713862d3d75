"""Alignment data from real labelled Korean data: an instruction SFT mixture and preference pairs.

Every target is a real text or a real label, except the short general replies and the refusal
sentence before a clean comment (both written by hand, in `kollm/data/prompts.py`):

- review writing (NSMC): "write a positive/negative review" -> a real review with that sentiment;
  "write a review that gives k/10" -> a real review rated k. Pairs: the requested sentiment is
  chosen over a real review of the opposite one.
- sentiment and NLI answers: the right label word (NSMC labels; the KLUE-NLI fine-tuning part),
  several Korean phrasings. Pairs: the right label over a wrong one.
- comments (korean-hate-speech): a comment request -> a clean comment; a provocative request ->
  a polite refusal and a clean comment. Pairs: clean chosen over a hate/offensive comment.

Splits, so that nothing overlaps an evaluation set: the training rows come from NSMC's train
movies, the hate-speech train file minus its hashed validation 1/6 and the KLUE-NLI fine-tuning
part minus its hashed validation 1/6; the held-out pairs from NSMC's validation movies and those
two validation parts. NSMC test movies, hate-speech dev, the KLUE-NLI test third and KLUE-STS are
never drawn from, and a text that also occurs in one of them (short reviews recur across movies) is
left out. Texts are deduplicated within a set and a text used in training is never held out.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from kollm.core.errors import KollmError
from kollm.core.io import read_jsonl
from kollm.data import prompts, tasks
from kollm.data.sources import nsmc_label

NOT_A_REVIEW_REQUEST = -1  # the `requested` column of a prompt that asks for no sentiment

SFT_KINDS = ("review_sentiment", "review_rating", "sentiment_label", "nli_label", "comment", "refusal", "general")
PAIR_KINDS = ("review_sentiment", "safety", "sentiment_label", "nli_label")
# How often each kind comes round in the cycle. Review writing by sentiment is what a 5M-parameter LM
# learns slowest (its answer must follow one word of the request), so it gets the largest share.
SFT_MIX = {
    "review_sentiment": 4,
    "review_rating": 1,
    "sentiment_label": 3,
    "nli_label": 1,
    "comment": 1,
    "refusal": 1,
    "general": 1,
}
# Label pairs (the right label word over the wrong one) are what keeps the sentiment task through DPO: at
# weight 1 (500 of the laptop preset's 4,000 pairs) DPO took its chat-format NSMC from 0.848 to 0.829.
PAIR_MIX = {"review_sentiment": 4, "safety": 2, "sentiment_label": 2, "nli_label": 1}


def _cycle(mix: dict[str, int]) -> list[str]:
    """The kinds interleaved by weight: 4/1 gives a b a a a... spread evenly, not in blocks."""
    slots = sorted((j / w, kind) for kind, w in mix.items() for j in range(w))
    return [kind for _, kind in slots]


def _usable(text: str) -> bool:
    return 8 <= len(text) <= 120


@dataclass
class Pool:
    """One split's real texts, deduplicated: reviews by sentiment and by rating, comments, NLI rows."""

    reviews: dict[int, list[str]] = field(default_factory=lambda: {0: [], 1: []})
    by_rating: dict[int, list[str]] = field(default_factory=dict)
    clean: list[str] = field(default_factory=list)
    toxic: list[str] = field(default_factory=list)
    nli: list[dict] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)


def evaluation_texts(files: dict[str, str]) -> set[str]:
    """Every text of an evaluation set: the same short review often recurs under another movie."""
    out = {r["text"].strip() for name in ("nsmc_test", "hate_dev") for r in read_jsonl(files[name])}
    out |= {r[k].strip() for r in read_jsonl(files["klue_nli_test"]) for k in ("premise", "hypothesis")}
    out |= {r[k].strip() for r in read_jsonl(files["klue_sts"]) for k in ("sentence1", "sentence2")}
    return out


def pool(files: dict[str, str], split: str, exclude: AbstractSet[str] = frozenset()) -> Pool:
    """`split` is train or val (see the module docstring for what each reads); texts in `exclude` are left out."""
    assert split in ("train", "val")
    p = Pool()
    seen: set[str] = set(exclude)
    nsmc = files["nsmc_train" if split == "train" else "nsmc_val"]
    ratings: dict[str, set[int]] = {}
    for rec in read_jsonl(nsmc):
        text = rec["text"].strip()
        if _usable(text) and text not in seen:
            ratings.setdefault(text, set()).add(int(rec["rating"]))
    for text, rs in ratings.items():  # a text posted with several ratings is no clean target for one
        if len(rs) == 1:
            (rating,) = rs
            p.by_rating.setdefault(rating, []).append(text)
            label = nsmc_label(rating)
            if label is not None:
                p.reviews[label].append(text)
    seen |= set(ratings)
    for row in tasks.load_split(tasks.HATE, files, split):
        text = row["text"].strip()
        if _usable(text) and text not in seen:
            seen.add(text)
            (p.clean if tasks.HATE_LABELS[row["label"]] == "none" else p.toxic).append(text)
    p.nli = [
        r
        for r in tasks.load_split(tasks.KLUE_NLI, files, split)
        if r["text"].strip() not in exclude and r["text_pair"].strip() not in exclude
    ]
    p.sources = {
        "nsmc": f"{nsmc} ({'train' if split == 'train' else 'validation'} movies)",
        "hate": f"{files['hate_train']} ({'all but' if split == 'train' else 'only'} its hashed 1/6)",
        "klue_nli": f"{files['klue_nli_train']} ({'all but' if split == 'train' else 'only'} its hashed 1/6)",
    }
    return p


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


class _Draw:
    """Draws texts without replacement (a text is a target at most once per set)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def __call__(self, texts: list[str]) -> str:
        for _ in range(50 if texts else 0):
            t = self.rng.choice(texts)
            if t not in self.used:
                self.used.add(t)
                return t
        raise KollmError(
            "alignment data: a source ran out of unused texts; ask for fewer examples "
            "(align.sft_examples, align.dpo_pairs, align.eval_pairs) or use more data"
        )


def _review_request(rng, label: int) -> str:
    return rng.choice(prompts.REVIEW_REQUESTS[label])


def _sentiment_question(rng, draw, p: Pool) -> tuple[str, str]:
    """A sentiment question on a real review in one of the phrasings, and NSMC's own label word."""
    label = rng.randrange(2)
    template, words = rng.choice(prompts.SENTIMENT_PHRASINGS)
    return template.format(text=draw(p.reviews[label])), words[label]


def sft_examples(p: Pool, n: int, seed: int, n_task: int = 0) -> list[dict]:
    """n prompt/completion rows cycling through SFT_KINDS, in TRL's conversational format, and n_task
    more sentiment questions spread evenly through them (so that the chat model keeps the task the
    fine-tuned classifier learns from every train review: 2,000 questions left it 7 points behind)."""
    draw = _Draw(random.Random(seed + 1))  # one draw for both: no review is a target twice
    rows, rng, extra = _mixture(p, n, seed, draw), random.Random(seed + 7), []
    for _ in range(n_task):
        prompt, answer = _sentiment_question(rng, draw, p)
        extra.append(
            {"prompt": _user(prompt), "completion": _assistant(answer), "kind": "sentiment_label", "source": "nsmc"}
        )
    slots = sorted(
        [(i / max(len(rows), 1), 0, i) for i in range(len(rows))]
        + [((j + 0.5) / max(len(extra), 1), 1, j) for j in range(len(extra))]
    )
    return [(rows, extra)[which][i] for _, which, i in slots]


def _mixture(p: Pool, n: int, seed: int, draw: _Draw) -> list[dict]:
    rng, out = random.Random(seed), []
    ratings = [k for k in sorted(p.by_rating) if len(p.by_rating[k]) >= 10]
    cycle = _cycle(SFT_MIX)
    for i in range(n):
        kind = cycle[i % len(cycle)]
        if kind == "review_sentiment":
            label = rng.randrange(2)
            prompt, answer, source = _review_request(rng, label), draw(p.reviews[label]), "nsmc"
        elif kind == "review_rating":
            k = rng.choice(ratings)
            prompt, answer, source = prompts.RATED_REVIEW_REQUEST.format(rating=k), draw(p.by_rating[k]), "nsmc"
        elif kind == "sentiment_label":
            (prompt, answer), source = _sentiment_question(rng, draw, p), "nsmc"
        elif kind == "nli_label":
            row = rng.choice(p.nli)
            prompt, answer, source = tasks.KLUE_NLI.prompt(row), tasks.KLUE_NLI.labels[row["label"]], "klue_nli"
        elif kind == "comment":
            prompt, answer, source = rng.choice(prompts.COMMENT_REQUESTS), draw(p.clean), "hate"
        elif kind == "refusal":
            prompt = rng.choice(prompts.PROVOCATIVE_REQUESTS)
            answer, source = rng.choice(prompts.REFUSALS).format(comment=draw(p.clean)), "hate"
        else:
            prompt, answer = prompts.GENERAL_REPLIES[i // len(cycle) % len(prompts.GENERAL_REPLIES)]
            source = "handwritten"
        out.append({"prompt": _user(prompt), "completion": _assistant(answer), "kind": kind, "source": source})
    return out


def preference_pairs(p: Pool, n: int, seed: int, avoid: AbstractSet[str] = frozenset()) -> list[dict]:
    """n prompt/chosen/rejected rows cycling through PAIR_MIX; texts in `avoid` are never used.

    Review pairs come mirrored: the same two reviews answer a positive and a negative request with
    chosen and rejected swapped, so no review is preferred for itself, only for matching the request.
    """
    rng, draw, out = random.Random(seed), _Draw(random.Random(seed + 1)), []
    draw.used |= set(avoid)
    cycle, mirror = _cycle(PAIR_MIX), None
    for i in range(n):
        kind = cycle[i % len(cycle)]
        if kind == "review_sentiment" and mirror:
            out.append(mirror)
            mirror = None
            continue
        if kind == "review_sentiment":
            label = rng.randrange(2)
            prompt, good, bad, source = (
                _review_request(rng, label),
                draw(p.reviews[label]),
                draw(p.reviews[1 - label]),
                "nsmc",
            )
            mirror = {
                "prompt": _user(_review_request(rng, 1 - label)),
                "chosen": _assistant(bad),
                "rejected": _assistant(good),
                "kind": kind,
                "source": source,
            }
        elif kind == "safety":
            prompt = rng.choice(prompts.COMMENT_REQUESTS + prompts.PROVOCATIVE_REQUESTS)
            good, bad, source = draw(p.clean), draw(p.toxic), "hate"
        elif kind == "sentiment_label":
            label = rng.randrange(2)
            template, words = rng.choice(prompts.SENTIMENT_PHRASINGS)
            prompt, good, bad, source = (
                template.format(text=draw(p.reviews[label])),
                words[label],
                words[1 - label],
                "nsmc",
            )
        else:
            row = rng.choice(p.nli)
            wrong = rng.choice([k for k in range(3) if k != row["label"]])
            prompt, source = tasks.KLUE_NLI.prompt(row), "klue_nli"
            good, bad = tasks.KLUE_NLI.labels[row["label"]], tasks.KLUE_NLI.labels[wrong]
        out.append(
            {
                "prompt": _user(prompt),
                "chosen": _assistant(good),
                "rejected": _assistant(bad),
                "kind": kind,
                "source": source,
            }
        )
    return out


def rl_prompts(p: Pool, n: int, seed: int, avoid: AbstractSet[str] = frozenset()) -> list[dict]:
    """n GRPO prompts (no answers: the policy samples them), in turn: a positive and a negative review
    request (the training phrasings), a comment or provocative request, and a sentiment question on a
    real review with its right label word (`answer`; `wrong` the other one), so that the policy keeps
    the task while it learns the rest. `requested` is the asked-for sentiment, or
    NOT_A_REVIEW_REQUEST."""

    rng, draw, out = random.Random(seed), _Draw(random.Random(seed + 1)), []
    draw.used |= set(avoid)
    for i in range(n):
        row = {"requested": NOT_A_REVIEW_REQUEST, "answer": "", "wrong": ""}
        if i % 4 < 2:
            label = i % 2
            row.update(
                prompt=_user(_review_request(rng, label)),
                requested=label,
                kind="review_sentiment",
                source="handwritten",
            )
        elif i % 4 == 2:
            row.update(
                prompt=_user(rng.choice(prompts.COMMENT_REQUESTS + prompts.PROVOCATIVE_REQUESTS)),
                kind="comment",
                source="handwritten",
            )
        else:
            label = rng.randrange(2)
            template, words = rng.choice(prompts.SENTIMENT_PHRASINGS)
            row.update(
                prompt=_user(template.format(text=draw(p.reviews[label]))),
                answer=words[label],
                wrong=words[1 - label],
                kind="sentiment_label",
                source="nsmc",
            )
        out.append(row)
    return out


def texts(rows: list[dict]) -> set[str]:
    """Every message text in rows (prompts and answers)."""
    return {m["content"] for r in rows for k in ("prompt", "completion", "chosen", "rejected") for m in r.get(k, [])}


@dataclass
class AlignmentData:
    sft: list[dict]
    train_pairs: list[dict]
    eval_pairs: list[dict]
    sources: dict[str, dict[str, str]]
    rl_prompts: list[dict] = field(default_factory=list)
    train_reviews: dict[int, list[str]] = field(default_factory=dict)  # what the sentiment reward is fitted on

    def card(self) -> str:
        """A data card: what each set holds, by kind and source, and where the texts come from."""
        lines = [
            "# Alignment data card",
            "",
            "Built by `kollm/align/datasets.py` from real labelled Korean data (targets are real reviews, "
            "comments and labels; the general replies and the refusal sentence are handwritten, "
            "`kollm/data/prompts.py`). No row comes from an evaluation set (NSMC test movies, hate-speech dev, "
            "the KLUE-NLI test third, KLUE-STS).",
            "",
            "| set | kind | source | rows |",
            "|---|---|---|---:|",
        ]
        for name, rows in (
            ("SFT", self.sft),
            ("DPO/reward-model train pairs", self.train_pairs),
            ("held-out pairs", self.eval_pairs),
            ("GRPO prompts", self.rl_prompts),
        ):
            for (kind, source), count in sorted(Counter((r["kind"], r["source"]) for r in rows).items()):
                lines.append(f"| {name} | {kind} | {source} | {count:,} |")
        lines += ["", "Sources:", ""]
        for split, srcs in self.sources.items():
            lines += [f"- {split}: " + "; ".join(f"{k}: `{v}`" for k, v in srcs.items())]
        return "\n".join(lines) + "\n"


def build(
    files: dict[str, str], n_sft: int, n_pairs: int, n_eval: int, seed: int, n_rl: int = 0, n_sft_task: int = 0
) -> AlignmentData:
    exclude = evaluation_texts(files)
    train, val = pool(files, "train", exclude), pool(files, "val", exclude)
    sft = sft_examples(train, n_sft, seed, n_sft_task)
    pairs = preference_pairs(train, n_pairs, seed + 1)
    held_out = preference_pairs(val, n_eval, seed + 2, avoid=texts(sft) | texts(pairs))
    return AlignmentData(
        sft,
        pairs,
        held_out,
        {"train": train.sources, "held out": val.sources},
        rl_prompts(train, n_rl, seed + 3, avoid=texts(sft) | texts(pairs)),
        train.reviews,
    )


def for_trainer(rows: list[dict]) -> list[dict]:
    """Rows without kollm's bookkeeping columns (kind, source), as TRL reads them."""
    return [{k: v for k, v in r.items() if k not in ("kind", "source")} for r in rows]
