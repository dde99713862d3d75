"""The alignment data: real labels behind every pair, no evaluation row, no text used twice."""

import pytest

from kollm.align import datasets as alignment_data
from kollm.core.io import read_jsonl
from kollm.data import prompts


@pytest.fixture(scope="module")
def built(data_files):
    return alignment_data.build(data_files, n_sft=140, n_pairs=80, n_eval=40, seed=0)


def _content(rows, key):
    return [r[key][0]["content"] for r in rows]


def test_pairs_follow_the_real_labels(built, data_files):
    hate = {r["text"].strip(): r["hate"] for r in read_jsonl(data_files["hate_train"])}
    for split, pairs in (("train", built.train_pairs), ("val", built.eval_pairs)):
        rating = {}
        for r in read_jsonl(data_files[f"nsmc_{split}"]):
            rating.setdefault(r["text"].strip(), set()).add(r["rating"])
        _check_pairs(pairs, rating, hate)
    assert {p["kind"] for p in built.train_pairs} == set(alignment_data.PAIR_KINDS)
    assert {s["kind"] for s in built.sft} == set(alignment_data.SFT_KINDS)


def _check_pairs(pairs, rating, hate):
    for p in pairs:
        prompt, chosen, rejected = p["prompt"][0]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"]
        if p["kind"] == "review_sentiment":
            positive = prompt in prompts.REVIEW_REQUESTS[1]
            assert positive or prompt in prompts.REVIEW_REQUESTS[0]
            good, bad = (9, 4) if positive else (4, 9)
            assert (min(rating[chosen]) >= good) if positive else (max(rating[chosen]) <= good)
            assert (max(rating[rejected]) <= bad) if positive else (min(rating[rejected]) >= bad)
        elif p["kind"] == "safety":
            assert hate[chosen] == "none" and hate[rejected] in ("hate", "offensive")
        elif p["kind"] == "sentiment_label":
            ((template, words),) = [(t, w) for t, w in prompts.SENTIMENT_PHRASINGS if chosen in w and rejected in w]
            assert chosen != rejected
        else:
            assert {chosen, rejected} <= set(("함의", "중립", "모순")) and chosen != rejected


def test_sft_targets_are_real_text_of_the_requested_kind(built, data_files):
    by_rating = {}
    for r in read_jsonl(data_files["nsmc_train"]):
        by_rating.setdefault(r["text"].strip(), set()).add(r["rating"])
    clean = {r["text"].strip() for r in read_jsonl(data_files["hate_train"]) if r["hate"] == "none"}
    for s in built.sft:
        prompt, answer = s["prompt"][0]["content"], s["completion"][0]["content"]
        if s["kind"] == "review_rating":
            k = int(prompt.split("10점 만점에 ")[1].split("점")[0])
            assert k in by_rating[answer]
        elif s["kind"] == "comment":
            assert answer in clean
        elif s["kind"] == "refusal":
            assert prompt in prompts.PROVOCATIVE_REQUESTS and any(answer.endswith(c) for c in clean)
        elif s["kind"] == "general":
            assert (prompt, answer) in prompts.GENERAL_REPLIES


def test_no_evaluation_row_and_no_text_reused(built, data_files):
    evaluation = set()
    for name in ("nsmc_test", "hate_dev", "klue_nli_test"):
        for r in read_jsonl(data_files[name]):
            evaluation |= {r.get(k, "").strip() for k in ("text", "premise", "hypothesis")} - {""}
    for r in read_jsonl(data_files["klue_sts"]):
        evaluation |= {r["sentence1"], r["sentence2"]}
    for rows in (built.sft, built.train_pairs, built.eval_pairs):
        for t in alignment_data.texts(rows):
            assert not (_embedded(t) & evaluation), t

    def answers(rows):
        return {
            t
            for r in rows
            for k in ("chosen", "rejected")
            for t in _content([r], k)
            if t not in ("함의", "중립", "모순") and not any(t in w for _, w in prompts.SENTIMENT_PHRASINGS)
        }

    assert not answers(built.eval_pairs) & (answers(built.train_pairs) | alignment_data.texts(built.sft))
    chosen = _content(built.train_pairs, "chosen")
    reviews = [c for c, p in zip(chosen, built.train_pairs) if p["kind"] == "review_sentiment"]
    assert len(reviews) == len(set(reviews))  # a real review is a target at most once


def _embedded(message: str) -> set[str]:
    """The real texts inside a message: itself, a review inside a sentiment prompt, NLI's two sentences."""
    out = {message}
    for template, _ in prompts.SENTIMENT_PHRASINGS:
        head, tail = template.split("{text}")
        if message.startswith(head) and message.endswith(tail):
            out.add(message[len(head) : len(message) - len(tail)])
    out |= {line.split(": ", 1)[1] for line in message.splitlines() if line.startswith(("전제: ", "가설: "))}
    for refusal in prompts.REFUSALS:
        head = refusal.split("{comment}")[0]
        if message.startswith(head):
            out.add(message[len(head) :])
    return out


def test_the_data_card_counts_every_row(built):
    card = built.card()
    total = sum(
        int(line.rsplit("|", 2)[1].replace(",", ""))
        for line in card.splitlines()
        if line.startswith(("| SFT", "| DPO", "| held-out"))
    )
    assert total == len(built.sft) + len(built.train_pairs) + len(built.eval_pairs)
    assert "nsmc_val" in card and "hate_train" in card
    assert all(set(r) == {"prompt", "completion"} for r in alignment_data.for_trainer(built.sft))


def test_a_review_that_recurs_in_the_test_movies_or_with_two_ratings_is_left_out(tmp_path):
    from kollm.core.io import write_jsonl

    def f(name, rows):
        write_jsonl(str(tmp_path / f"{name}.jsonl"), rows)
        return str(tmp_path / f"{name}.jsonl")

    shared, mixed, clean = "정말 최고의 영화였습니다", "그냥 그랬던 영화입니다", "오늘도 좋은 하루 보내세요"
    files = {
        "nsmc_train": f(
            "nsmc_train",
            [
                {"text": shared, "rating": 10},
                {"text": mixed, "rating": 10},
                {"text": mixed, "rating": 2},
                {"text": "다시 보고 싶은 명작", "rating": 9},
            ],
        ),
        "nsmc_val": f("nsmc_val", []),
        "nsmc_test": f("nsmc_test", [{"text": shared, "rating": 9}]),
        "hate_train": f("hate_train", [{"text": clean, "hate": "none"}]),
        "hate_dev": f("hate_dev", []),
        "klue_nli_train": f("klue_nli_train", []),
        "klue_nli_test": f("klue_nli_test", []),
        "klue_sts": f("klue_sts", []),
    }
    train = alignment_data.pool(files, "train", alignment_data.evaluation_texts(files))
    assert train.reviews == {0: [], 1: ["다시 보고 싶은 명작"]}
    assert train.by_rating == {9: ["다시 보고 싶은 명작"]}
    in_val = alignment_data.pool(files, "val", set())  # the hashed 1/6 of the one comment: it is in one split
    assert (clean in train.clean) != (clean in in_val.clean)


def test_review_pairs_come_mirrored_and_the_mixture_is_weighted(built):
    """A review pair and its mirror: the same two reviews, chosen and rejected swapped, under a request
    for the other sentiment; so a review is preferred only for matching the request."""
    reviews = [p for p in built.train_pairs if p["kind"] == "review_sentiment"]
    pairs = {(p["chosen"][0]["content"], p["rejected"][0]["content"]): p["prompt"][0]["content"] for p in reviews}
    mirrored = [(c, r) for (c, r) in pairs if (r, c) in pairs]
    assert len(mirrored) >= len(pairs) - 1  # the last pair's mirror may fall past n
    for c, r in mirrored:
        asks_positive = pairs[(c, r)] in prompts.REVIEW_REQUESTS[1]
        assert asks_positive != (pairs[(r, c)] in prompts.REVIEW_REQUESTS[1])
    share = sum(s["kind"] == "review_sentiment" for s in built.sft) / len(built.sft)
    expected = alignment_data.SFT_MIX["review_sentiment"] / sum(alignment_data.SFT_MIX.values())
    assert abs(share - expected) < 0.02


def test_extra_sentiment_questions_are_real_labels_spread_through_the_mixture(data_files):
    """align.sft_task_examples: that many more sentiment questions on train reviews, each answered with
    NSMC's own label word, none reusing a text of the mixture, spread evenly rather than in a block."""
    plain = alignment_data.build(data_files, n_sft=120, n_pairs=8, n_eval=8, seed=0)
    more = alignment_data.build(data_files, n_sft=120, n_pairs=8, n_eval=8, seed=0, n_sft_task=240)
    assert len(more.sft) == 360
    questions = [s for s in more.sft if s["kind"] == "sentiment_label"]
    assert len(questions) == 240 + sum(s["kind"] == "sentiment_label" for s in plain.sft)
    assert [s for s in more.sft if s["kind"] != "sentiment_label"] == [
        s for s in plain.sft if s["kind"] != "sentiment_label"
    ]  # the mixture itself is unchanged
    label = {}
    for r in read_jsonl(data_files["nsmc_train"]):
        label.setdefault(r["text"].strip(), set()).add(int(r["rating"]) >= 9)
    reviews = []
    for s in questions:
        prompt, answer = s["prompt"][0]["content"], s["completion"][0]["content"]
        (review,) = _embedded(prompt) - {prompt}
        ((template, words),) = [(t, w) for t, w in prompts.SENTIMENT_PHRASINGS if answer in w]
        assert label[review] == {bool(words.index(answer))}
        reviews.append(review)
    assert len(reviews) == len(set(reviews))
    first_half = sum(s["kind"] == "sentiment_label" for s in more.sft[:180])
    assert abs(first_half - len(questions) / 2) <= 10
    from kollm import config
    from kollm.core.errors import KollmError

    with pytest.raises(KollmError, match="sft_task_examples"):
        cfg = config.PipelineConfig()
        cfg.align.sft_task_examples = -1
        config.validate(cfg)
