from kollm.curation.korean import normalize
from kollm.tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, chars_per_token, unk_rate


def test_korean_bpe_round_trips_and_compresses(korean_tokenizer, nsmc_rows):
    texts = [r["text"] for r in nsmc_rows[-500:]]
    for t in texts[:200]:
        t = normalize(t)  # what the curate stage hands the tokenizer
        ids = korean_tokenizer(t, add_special_tokens=False)["input_ids"]
        assert korean_tokenizer.decode(ids) == t  # exact round trip, 띄어쓰기 included
    assert chars_per_token(korean_tokenizer, texts) > 1.5  # merges Hangul syllables into words
    assert unk_rate(korean_tokenizer, texts) < 0.01


def test_special_tokens_and_chat_template(korean_tokenizer):
    for tok in SPECIAL_TOKENS:
        assert korean_tokenizer.convert_tokens_to_ids(tok) != korean_tokenizer.unk_token_id or tok == "<unk>"
    assert korean_tokenizer.chat_template == CHAT_TEMPLATE
    text = korean_tokenizer.apply_chat_template([{"role": "user", "content": "안녕하세요"}],
                                                add_generation_prompt=True, tokenize=False)
    assert text == "<|user|>안녕하세요</s><|assistant|>"
    ids = korean_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert korean_tokenizer.eos_token_id in ids
    assert ids[-1] == korean_tokenizer.convert_tokens_to_ids("<|assistant|>")
