"""course/scratch/bpe.py against HF `tokenizers`: the same ByteLevel pre-tokenisation, the same merges and vocabulary
from the BPE trainer, the same ids from the encoder, and an exact round trip through the decoder."""

import json

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from course import scratch
from kollm.data import sources

bpe = scratch.load("bpe")

EOT = "<|endoftext|>"
VOCAB, MIN_FREQUENCY = 1000, 2
ROUND_TRIP = [
    "ㅋㅋㅋㅋㅋ 진짜 웃겨요😂😂 ㅠㅠ 눈물나네ㅜㅜ",
    "GPT-2는 2019년에 나왔고 vocab은 50,257개!! OTT 3편 중 2편 봄 (4/5점)",
    f"배우 연기👍🏻 최고… 10점 만점에 10점{EOT}다음 리뷰 ㅎㅎ",
    "ㄱㄴㄷㄹ 자모만, 옛한글 ᄒᆞᆫ글, 가족 👨‍👩‍👧‍👦 국기 🇰🇷",
    "  앞뒤 공백과\n\t줄바꿈 탭   ",
    f"{EOT}{EOT}It's 'quoted' we'll see{EOT}",
]


def hf_train(texts, vocab_size, min_frequency=MIN_FREQUENCY):
    """HF's byte-level BPE, trained the way the scratch trainer is: ByteLevel pre-tokenizer (no prefix space), the 256
    byte characters as the initial alphabet, the same special token and minimum frequency."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def hf_merges(tok):
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges]


def test_tiny_corpus_merges_and_ties_equal_hf():
    """On a few Korean lines full of equal pair counts, the scratch trainer picks the same merges in the same order
    as HF's BpeTrainer (ties broken by the smaller (id, id) pair) and gives every token the same id."""
    texts = ["ㅋㅋㅋ ㅋㅋ ㅠㅠ ㅎㅎ", "재밌다 재밌어 ab cd", "영화 영화관 ㅋㅋㅋㅋ", "재미 없다 ab"]
    mine = bpe.train(texts, vocab_size=300, special_tokens=[EOT], min_frequency=1)
    hf = hf_train(texts, vocab_size=300, min_frequency=1)
    assert mine.merges == hf_merges(hf)
    assert mine.vocab == hf.get_vocab()
    assert mine.vocab[EOT] == 0 and len(mine.merges) > 20


def test_pre_tokenize_equals_hf_byte_level(nsmc_rows):
    """The GPT-2 split and bytes→unicode map written out by hand give HF ByteLevel(add_prefix_space=False)'s pieces,
    on 3,000 real reviews and on text with emoji, jamo, digits, English contractions and odd whitespace."""
    hf = pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert sorted(bpe.BYTE_TO_CHAR.values()) == sorted(pre_tokenizers.ByteLevel.alphabet())
    for text in [r["text"] for r in nsmc_rows[:3000]] + ROUND_TRIP + ["a\u3000b\xa0c\u2028d\x1ce ①② ²  x"]:
        assert bpe.pre_tokenize(text) == [piece for piece, _ in hf.pre_tokenize_str(text)], text


@pytest.fixture(scope="module")
def trained(nsmc_rows):
    texts = [r["text"] for r in nsmc_rows]
    assert not any(EOT in t for t in texts)  # the trainers differ only on special tokens inside training text
    return bpe.train(texts, vocab_size=VOCAB, special_tokens=[EOT], min_frequency=MIN_FREQUENCY), hf_train(texts, VOCAB)


def test_nsmc_merges_and_vocab_equal_hf(trained):
    """On 20,000 NSMC reviews at vocabulary 1,000, the merges (in order) and the token → id map equal HF's."""
    mine, hf = trained
    assert len(mine.vocab) == VOCAB
    assert mine.merges == hf_merges(hf)
    assert mine.vocab == hf.get_vocab()


def test_held_out_ids_equal_hf(trained, data_dir):
    """On 2,000 held-out reviews (after the 20,000 trained on), the scratch encoder's ids equal HF's, and decoding
    them gives the review back."""
    mine, hf = trained
    held_out = [r["text"] for r in sources.iter_nsmc(data_dir, limit=22000)][20000:]
    assert len(held_out) == 2000
    for text in held_out:
        ids = mine.encode(text)
        assert ids == hf.encode(text).ids, text
        assert mine.decode(ids) == text


def test_round_trip_korean_emoji_jamo_special(trained):
    """Korean text with emoji, jamo (ㅋㅋㅋ, ㅠㅠ), old-Hangul conjoining jamo, mixed English/digits, whitespace and the
    special token: ids equal HF's, the special token is one id (never split, never in a merge), and decode gives the
    text back exactly, as HF's decoder does."""
    mine, hf = trained
    assert not any(EOT in a + b for a, b in mine.merges)
    assert mine.encode(EOT) == [mine.vocab[EOT]] == hf.encode(EOT).ids
    for text in ROUND_TRIP:
        ids = mine.encode(text)
        assert ids == hf.encode(text).ids, text
        assert ids.count(mine.vocab[EOT]) == text.count(EOT)
        assert mine.decode(ids) == text == hf.decode(ids, skip_special_tokens=False)
