import torch

from kollm import prompts, sentiment
from kollm.serve.generation import IncrementalDecoder


def test_labelled_sample_is_balanced_with_official_labels(nsmc_rows):
    rows = sentiment.labelled(nsmc_rows, seed=0, per_class=300)
    assert len(rows) == 600 and sum(r["label"] for r in rows) == 300
    assert all((r["rating"] >= 9) == bool(r["label"]) for r in rows)
    assert all(r["rating"] <= 4 or r["rating"] >= 9 for r in rows)  # 5-8 excluded


def test_long_reviews_keep_the_answer_slot(korean_tokenizer):
    long_review = "이 영화는 정말 " * 200
    ids = sentiment.prompt_ids(korean_tokenizer, long_review, max_len=48)
    assert len(ids) <= 48
    assistant = korean_tokenizer.convert_tokens_to_ids("<|assistant|>")
    assert ids[-1] == assistant and ids[-2] == korean_tokenizer.eos_token_id


def test_training_labels_mask_the_prompt(korean_tokenizer):
    ids, labels = sentiment.training_example(korean_tokenizer, {"text": "최고의 영화", "label": 1}, 64)
    answer = [t for t in labels if t != -100]
    assert korean_tokenizer.decode(answer) == "긍정</s>"
    assert ids[-len(answer):] == answer


def test_predict_learns_a_separable_signal(tiny_model_dir, korean_tokenizer):
    """A few LoRA-free steps on two real-looking reviews make predict() follow the labels."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = [{"text": "최고의 영화 감동 그 자체", "label": 1}, {"text": "시간 낭비 최악의 영화", "label": 0}]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(100):
        ids, mask, labels = sentiment.collate([sentiment.training_example(korean_tokenizer, r, 64) for r in rows],
                                              korean_tokenizer.pad_token_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    probs = sentiment.predict(model, korean_tokenizer, [r["text"] for r in rows], 64)
    assert probs[0] > 0.9 and probs[1] < 0.1


def test_incremental_decoder_never_emits_half_a_hangul_character(nsmc_rows):
    """With a byte-level tokenizer one syllable spans several tokens; pieces must stay whole."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([r["text"] for r in nsmc_rows[:300]],
                            trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    text = "정말 재밌는 영화였어요 ㅋㅋ 강추합니다"
    ids = fast(text)["input_ids"]
    assert any("\ufffd" in fast.decode([i]) for i in ids)  # token-by-token decoding breaks Hangul
    decoder = IncrementalDecoder(fast)
    pieces = [p for p in (decoder.push(i) for i in ids) if p]
    assert "".join(pieces) == text
    trailing = IncrementalDecoder(fast)
    spaced = [trailing.push(i) for i in fast(" 정말   ")["input_ids"]]
    assert "".join(spaced) == "정말"  # no leading or trailing whitespace is ever sent
    assert not any("\ufffd" in p for p in pieces)


def test_preference_pairs_come_from_real_labels(nsmc_rows, data_dir):
    from kollm import preferences
    from kollm.data.sources import iter_hate_labeled

    hate = list(iter_hate_labeled(data_dir, "train"))
    pairs = preferences.dpo_pairs(nsmc_rows, hate, 30, seed=0)
    rating = {}
    for r in nsmc_rows:
        rating.setdefault(r["text"], set()).add(r["rating"])
    label = {h["text"]: h["hate"] for h in hate}
    for p in pairs:
        chosen, rejected = p["chosen"][0]["content"], p["rejected"][0]["content"]
        if p["kind"] == "positive_review":
            assert max(rating[chosen]) >= 9 and min(rating[rejected]) <= 4
        elif p["kind"] == "negative_review":
            assert min(rating[chosen]) <= 4 and max(rating[rejected]) >= 9
        elif p["kind"] == "clean_comment":
            assert label[chosen] == "none" and label[rejected] in ("hate", "offensive")
        else:
            review = p["prompt"][0]["content"].removeprefix(prompts.SENTIMENT_INSTRUCTION)
            assert {chosen, rejected} == set(prompts.SENTIMENT_LABELS)
            assert max(rating[review]) >= 9 if chosen == "긍정" else min(rating[review]) <= 4
    assert {p["kind"] for p in pairs} == set(preferences.KINDS)
    sft = preferences.sft_examples(nsmc_rows, hate, 9, seed=0)
    assert [s["prompt"][0]["content"] for s in sft[:3]] == prompts.GENERATION_PROMPTS
