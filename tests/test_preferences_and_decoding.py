from kollm import prompts
from kollm.serve.generation import IncrementalDecoder


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
