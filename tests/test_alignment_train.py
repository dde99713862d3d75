"""The TRL alignment steps on a tiny Llama and real Korean data: each learns, keeps its reference
frozen, and hands on a plain model folder; GRPO's rewards on hand-checked answers."""

import os

import pytest

from kollm.align import datasets as alignment_data
from kollm.align import rewards
from kollm.align import steps as train
from kollm.config import AlignConfig


@pytest.fixture(scope="module")
def built(all_data_files):
    # every comment: the ci preset keeps 3,000, too few held-out hateful ones; 2/9 of the pairs are safety
    # pairs (PAIR_MIX): 500 to train on, 240 held out
    return alignment_data.build(all_data_files, n_sft=240, n_pairs=2250, n_eval=1080, seed=0, n_rl=16)


def _cfg(**kw) -> AlignConfig:
    return AlignConfig(batch_size=8, max_len=64, **kw)


def _losses(out_dir, key="loss"):
    """The logged training values of a step (log_history.json, beside its model folder)."""
    import json

    with open(os.path.join(out_dir, "log_history.json")) as f:
        return [h[key] for h in json.load(f) if key in h and "eval_loss" not in h]


def _mean(xs):
    return sum(xs) / len(xs)


def _loads(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)
    assert tok.chat_template, "the saved tokenizer keeps the chat template"
    return model, tok


@pytest.fixture(scope="module")
def sft_result(tiny_model_dir, built, tmp_path_factory):
    return train.sft(tiny_model_dir, built.sft, _cfg(sft_epochs=2, sft_lr=2e-3), str(tmp_path_factory.mktemp("sft")))


def test_sft_loss_falls_and_the_model_saves_and_loads(sft_result):
    losses = _losses(os.path.dirname(sft_result.model_dir))
    assert sft_result.steps >= 50 and len(losses) >= 3  # 2 epochs of 240 rows, 8 a batch
    assert losses[-1] < losses[0] - 0.25  # nats per answer token
    model, tok = _loads(sft_result.model_dir)
    assert not any(n for n, _ in model.named_parameters() if "lora" in n)


def test_sft_rows_are_cut_to_max_len_tokens_as_trl_would():
    from datasets import Dataset

    rows = Dataset.from_list(
        [
            {"input_ids": list(range(100)), "labels": [-100] * 90 + list(range(10))},
            {"input_ids": list(range(80)), "labels": [-100] * 50 + list(range(30))},
            {"input_ids": [1, 2, 3], "labels": [-100, 2, 3]},
        ]
    )
    cut = train._truncated(rows, 64)
    # the first row's answer starts after 64 tokens: nothing left to learn from, so it goes, as in TRL
    assert cut["input_ids"] == [list(range(64)), [1, 2, 3]]
    assert cut["labels"] == [[-100] * 50 + list(range(14)), [-100, 2, 3]]
    assert train._truncated(rows, 100) is rows  # nothing to cut: the rows are handed on as they are


def test_dpo_learns_the_pairs_against_a_frozen_reference(sft_result, built, tmp_path):
    r = train.dpo(
        sft_result.model_dir,
        built.train_pairs[:320],
        built.eval_pairs,
        _cfg(dpo_epochs=2, dpo_lr=3e-4, dpo_sft_weight=0.0),
        str(tmp_path),
    )
    losses, margins = _losses(str(tmp_path)), _losses(str(tmp_path), "rewards/margins")
    early, late = slice(0, 3), slice(-3, None)
    assert _mean(losses[late]) < _mean(losses[early]) and _mean(margins[late]) > _mean(margins[early]), (
        losses,
        margins,
    )
    assert r.metrics["reference_unchanged"] is True
    assert set(r.metrics["before"]) == set(r.metrics["after"]) >= {"loss", "rewards/accuracies", "rewards/margins"}
    _loads(r.model_dir)


def test_dpo_with_lora_merges_the_adapter_into_a_plain_model(sft_result, built, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    r = train.dpo(
        sft_result.model_dir,
        built.train_pairs[:64],
        built.eval_pairs[:16],
        _cfg(lora=True, lora_r=4, dpo_lr=5e-3),
        str(tmp_path),
    )
    merged, _ = _loads(r.model_dir)
    before = AutoModelForCausalLM.from_pretrained(sft_result.model_dir)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    changed = [
        n for (n, p), (_, q) in zip(merged.named_parameters(), before.named_parameters()) if not torch.equal(p, q)
    ]
    assert changed and all(
        any(m in n for m in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
        for n in changed
    )
    assert r.metrics["reference_unchanged"] is True


def test_the_reward_model_ranks_held_out_pairs_above_chance(korean_tokenizer, built, tmp_path):
    """On the safety pairs (clean over hateful comments), which a model this small can tell apart; the
    other kinds are in the held-out accuracy by kind. A freshly built Llama: the 200-step pretrained
    one's last-token states barely differ between answers, and it learnt less (0.55-0.59)."""
    from transformers import AutoModelForSequenceClassification

    from kollm.config import ModelConfig
    from kollm.models import build_model

    build_model(
        ModelConfig(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128, max_seq_len=64),
        korean_tokenizer,
        seed=0,
    ).save_pretrained(tmp_path / "init")
    korean_tokenizer.save_pretrained(tmp_path / "init")
    safety = [p for p in built.train_pairs if p["kind"] == "safety"]
    held_out = [p for p in built.eval_pairs if p["kind"] == "safety"]
    r = train.reward_model(
        str(tmp_path / "init"), safety, held_out, _cfg(reward_epochs=3, reward_lr=1e-3), str(tmp_path / "rm")
    )
    # 240 held-out pairs: at chance, 0.62 or more happens 0.02 % of the time
    assert len(held_out) >= 200 and r.metrics["accuracy"] >= 0.62, r.metrics
    assert r.metrics["accuracy"] > r.metrics["accuracy_before"], r.metrics
    assert r.metrics["accuracy_by_kind"] == {"safety": r.metrics["accuracy"]}
    rm = AutoModelForSequenceClassification.from_pretrained(r.model_dir)
    assert rm.config.num_labels == 1


@pytest.fixture(scope="module")
def reward_models(all_data_files):
    from kollm.curation import toxicity
    from kollm.data import sources

    pool = alignment_data.pool(all_data_files, "train")
    sentiment = rewards.fit_sentiment(pool.reviews, 5000, seed=0)
    tox, _ = toxicity.train(
        sources.iter_hate_labeled(sources.resolve_data_dir(), "train"),
        sources.iter_hate_labeled(sources.resolve_data_dir(), "dev"),
    )
    return sentiment, tox


def test_grpo_rewards_on_hand_checked_answers(reward_models):
    sentiment_match, safety, label_match = rewards.make_rewards(*reward_models)
    good, bad = "정말 재밌고 감동적인 최고의 영화 강추합니다", "시간 아깝다 최악의 영화 돈 버렸다"
    conversational = [[{"role": "assistant", "content": good}], [{"role": "assistant", "content": bad}]]
    wanted_positive = sentiment_match(prompts=[None] * 2, completions=conversational, requested=[1, 1])
    wanted_negative = sentiment_match(prompts=[None] * 2, completions=[good, bad], requested=[0, 0])
    assert wanted_positive[0] > 0.8 and wanted_positive[1] < 0.2
    assert wanted_negative[0] < 0.2 and wanted_negative[1] > 0.8
    assert sentiment_match(prompts=[None], completions=[good], requested=[rewards.NOT_A_REVIEW_REQUEST]) == [None]
    clean, insult = safety(prompts=[None] * 2, completions=["좋은 하루 보내세요, 응원합니다", "미친 놈아 꺼져 병신아"])
    assert clean > 0.5 > insult
    answers = ["긍정", " 긍정적입니다.", "부정", "", "예 좋아했어요"]
    assert label_match(
        prompts=[None] * 5,
        completions=answers,
        answer=["긍정", "긍정", "긍정", "긍정", ""],
        wrong=["부정", "부정", "부정", "부정", ""],
    ) == [1.0, 1.0, 0.0, 0.0, None]
    assert label_match(prompts=[None], completions=["부정적"], answer=["부정적"], wrong=["긍정적"]) == [1.0]


def test_grpo_trains_on_the_rewards_and_saves(sft_result, built, reward_models, tmp_path):
    import pytest as _pytest

    from kollm.core.errors import KollmError

    funcs = rewards.make_rewards(*reward_models)
    r = train.grpo(
        sft_result.model_dir,
        built.rl_prompts,
        funcs,
        [1.0, 1.0, 1.0],
        _cfg(grpo_generations=4, grpo_max_new_tokens=8, grpo_beta=0.04, grpo_lr=1e-4),
        str(tmp_path),
    )
    assert r.steps == len(built.rl_prompts) * 4 // 8
    assert r.metrics["log"] and all(0.0 <= h["reward"] <= 3.0 for h in r.metrics["log"])
    assert r.metrics["reference_unchanged"] is True
    _loads(r.model_dir)
    with _pytest.raises(KollmError, match="multiple of align.grpo_generations"):
        train.grpo(
            sft_result.model_dir,
            built.rl_prompts,
            funcs,
            [1.0, 1.0, 1.0],
            _cfg(grpo_generations=3),
            str(tmp_path / "bad"),
        )


def test_rl_prompts_ask_for_both_sentiments_for_comments_and_for_labels(built, all_data_files):
    from kollm.core.io import read_jsonl
    from kollm.data import prompts
    from kollm.data.sources import nsmc_label

    asked = [p["requested"] for p in built.rl_prompts]
    assert asked.count(1) == asked.count(0) == len(asked) // 4 and rewards.NOT_A_REVIEW_REQUEST in asked
    assert all(len(p["prompt"]) == 1 and p["prompt"][0]["role"] == "user" for p in built.rl_prompts)
    labels = {}
    for r in read_jsonl(all_data_files["nsmc_train"]):
        labels.setdefault(r["text"].strip(), set()).add(nsmc_label(r["rating"]))
    questions = [p for p in built.rl_prompts if p["kind"] == "sentiment_label"]
    assert len(questions) == len(built.rl_prompts) // 4
    for q in questions:  # the right word is the review's own NSMC label
        ((template, words),) = [(t, w) for t, w in prompts.SENTIMENT_PHRASINGS if q["answer"] in w and q["wrong"] in w]
        review = next(t for t in labels if template.format(text=t) == q["prompt"][0]["content"])
        assert labels[review] == {words.index(q["answer"])}
