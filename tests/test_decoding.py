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
