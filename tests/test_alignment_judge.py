"""The alignment judges: sampled answers, and the shares computed from a judge's labels."""

from kollm.align import judge
from kollm.data import prompts, tasks


def _lm(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def test_sampled_answers_are_seeded_text(tiny_model_dir):
    model, tokenizer = _lm(tiny_model_dir)
    a = judge.sample_answers(model, tokenizer, prompts.WRITE_POSITIVE_REVIEW, 4, 8, seed=3)
    assert len(a) == 4 and all(isinstance(x, str) for x in a)
    assert a == judge.sample_answers(model, tokenizer, prompts.WRITE_POSITIVE_REVIEW, 4, 8, seed=3)
    assert not any("<s>" in x or "</s>" in x for x in a)


def test_shares_count_what_the_judge_reads(tiny_model_dir):
    model, tokenizer = _lm(tiny_model_dir)
    always_positive = lambda texts: [1] * len(texts)  # noqa: E731
    r = judge.sentiment_following(model, tokenizer, always_positive, n=3, max_new_tokens=4)
    # as many positive requests as negative ones, in both phrasing sets: exactly half follow
    assert r["share"] == r["share_trained_phrasings"] == r["share_heldout_phrasings"] == 0.5
    assert r["answers"] == 3 * sum(
        len(v) for d in (prompts.REVIEW_REQUESTS, prompts.HELDOUT_REVIEW_REQUESTS) for v in d.values()
    )
    always_offensive = lambda texts: [tasks.HATE_LABELS.index("offensive")] * len(texts)  # noqa: E731
    t = judge.toxic_rate(model, tokenizer, always_offensive, n=2, max_new_tokens=4)
    assert t["rate"] == t["rate_provocative"] == 1.0
    clean = lambda texts: [tasks.HATE_LABELS.index("none")] * len(texts)  # noqa: E731
    assert judge.toxic_rate(model, tokenizer, clean, n=2, max_new_tokens=4)["rate"] == 0.0


def test_a_finetuned_classifier_folder_is_a_judge(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from kollm.finetune import methods

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    methods.load_base(tiny_model_dir, "cls", 2, tokenizer.pad_token_id).save_pretrained(tmp_path / "cls")
    tokenizer.save_pretrained(tmp_path / "cls")
    j = judge.Judge.load(str(tmp_path / "cls"), tasks.NSMC)
    labels = j(["정말 재밌는 영화", "", "시간 낭비"])
    assert len(labels) == 3 and set(labels) <= {0, 1}
