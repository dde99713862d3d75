"""Korean text functions and Curator filters: each keeps clean Korean that the stock filter drops."""

import unicodedata

import numpy as np
import pytest

from kollm.curation import korean, pii
from kollm.curation.minhash import MinHasher, MinHashParams, canonical, exact_key, find_duplicates


def test_normalize_composes_nfd_hangul_and_collapses_spaces():
    nfd = unicodedata.normalize("NFD", "한국어   영화\n리뷰")
    assert nfd != "한국어 영화 리뷰"
    assert korean.normalize(nfd) == "한국어 영화 리뷰"


def test_korean_scores():
    assert korean.char_length("재밌어요 ㅋㅋ") == 6  # spaces do not count
    assert korean.eojeol_count("영화를 보았다 정말") == 3
    assert korean.hangul_ratio("재밌어요 ㅋㅋ") == 1.0
    assert korean.hangul_ratio("good movie") == 0.0
    assert korean.hangul_ratio("최고 best") == 2 / 6
    assert korean.hangul_ratio("괜찮네....") == 3 / 7 and korean.hangul_letter_ratio("괜찮네....") == 1.0
    assert korean.jamo_ratio("재밌어요ㅋㅋ") == 2 / 6
    assert korean.jamo_ratio("ㅋㅋㅋ") == 1.0
    assert korean.char_run_ratio("ㅋㅋㅋ") == 0.0 and korean.char_run_ratio("ㅋㅋㅋㅋㅋㅋㅋㅋ") == 1.0
    assert korean.repeated_ngram_ratio("재밌다재밌다재밌다재밌다") > 0.5
    assert korean.repeated_ngram_ratio("연기가 정말 좋았고 스토리도 탄탄했다") == 0.0
    assert korean.url_count("여기 www.spam.co.kr 가입") == 1 and korean.url_count("좋은 영화.정말") == 0
    assert korean.is_boilerplate("종합 평점은 7점 드립니다.") and not korean.is_boilerplate(
        "평점 7점 드립니다 재밌어요"
    )


@pytest.fixture(scope="module")
def clean_reviews(nsmc_rows):
    """Real NSMC reviews that are plainly fine Korean text (longer than a few words)."""
    out = [korean.normalize(r["text"]) for r in nsmc_rows]
    return [
        t
        for t in out
        if korean.eojeol_count(t) >= 4
        and korean.hangul_ratio(t) >= 0.9
        and korean.char_run_ratio(t) == 0
        and korean.url_count(t) == 0
    ][:2000]


def test_stock_curator_heuristics_drop_korean_that_ours_keep(clean_reviews):
    from nemo_curator.stages.text.filters.heuristic.string import (
        CommonEnglishWordsFilter,
        MeanWordLengthFilter,
        NonAlphaNumericFilter,
    )

    from curator_pipelines import filters as F
    from curator_pipelines.korean_pipeline import document_filters
    from kollm.config import CurateConfig

    def kept_share(f):
        return np.mean([f.keep_document(f.score_document(t)) for t in clean_reviews])

    assert len(clean_reviews) == 2000
    # Curator's stock filters, written for English: ASCII-only alphanumerics, English stop words,
    # mean word length in a language whose words carry particles
    assert kept_share(NonAlphaNumericFilter()) < 0.01
    assert kept_share(CommonEnglishWordsFilter()) < 0.01
    assert kept_share(MeanWordLengthFilter()) < 0.8  # a quarter of clean reviews: eojeol are short
    # kollm's Korean filters, at the pipeline's thresholds, keep (nearly) all of them
    for f in document_filters(CurateConfig(), None):
        if isinstance(f, F.KoreanLangId):
            f.load_model()
            conf, lang = f.score_batch(clean_reviews)
            assert f.keep_batch(conf, lang, clean_reviews).mean() > 0.99, f.name
        else:
            assert kept_share(f) > 0.99, f.name


def test_langid_reads_unspaced_short_and_nfd_korean():
    from nemo_curator.stages.text.filters.fasttext.fasttext_filters import FastTextLangId

    from curator_pipelines.filters import KoreanLangId, bundled_langid_model

    texts = [
        "괜찮은데",
        "곽지균감독님의섬세함을기억하고싶은영화",
        "왜만듬?",
        unicodedata.normalize("NFD", "정말 재밌게 봤어요"),
    ]
    stock, ours = FastTextLangId(bundled_langid_model(), 0.5, "ko"), KoreanLangId(min_langid_score=0.5)
    stock.load_model(), ours.load_model()
    assert not any(stock.keep_document(stock.score_document(t)) for t in texts)
    assert all(ours.keep_document(ours.score_document(t)) for t in texts)
    others = [
        "this is an english sentence",
        "これは日本語の文です",
        "콩콩ㅋㄹㅇ콩콩콬ㅇ콩콩콩",
        "힐링, 힐링!",
        "괜찮네....",
    ]
    conf, lang = ours.score_batch(others)
    # confidently another language goes, unless the text is mostly Hangul (fastText misreads slang)
    assert (lang[2:] != "ko").all() and (conf[2:] >= 0.5).all()
    assert ours.keep_batch(conf, lang, others).tolist() == [False, False, True, True, True]


@pytest.mark.parametrize(
    "text, kind",
    [
        ("연락처 010-1234-5678 로 주세요", "phone"),
        ("01098765432 문자주세요", "phone"),
        ("+82 10 1234 5678", "phone"),
        ("서울 02-123-4567", "phone"),
        ("031-123-4567 대표번호", "phone"),
        ("070-1234-5678", "phone"),
        ("주민번호 900101-1234567 입니다", "rrn"),
        ("9001012234567", "rrn"),
        ("051231-5123456", "rrn"),
        ("자막 yuntang2@naver.com 보내주세요", "email"),
        ("a.b-c@korea.ac.kr", "email"),
        ("입금 110-123-456789 신한", "account"),
        ("1002-123-456789 우리은행", "account"),
        ("국민 123456-01-123456", "account"),
    ],
)
def test_pii_is_redacted(text, kind):
    out, counts = pii.redact(text)
    assert counts == {kind: 1}, (out, counts)
    assert pii.PLACEHOLDERS[kind] in out
    assert not any(ch.isdigit() for ch in out.replace("+", "")) or kind == "email" and "@" not in out


@pytest.mark.parametrize(
    "text",
    [
        "2020-01-01 개봉",
        "1988년 개봉, 평점 9.5",
        "10,000원 아깝다",
        "2010-2020 시리즈",
        "931345-1234567",
        "1588-1234 고객센터",
        "12-34-56",
        "평점 10점 만점에 10점",
        "상영시간 120분",
        "010 은 번호가 아님",
        "ISBN 978-89-1234-567-8",
    ],
)
def test_pii_leaves_near_misses_alone(text):
    assert pii.redact(text) == (text, {})


def test_minhash_finds_korean_near_duplicates_and_keeps_the_first():
    texts = [
        "연기가 정말 좋았고 스토리도 탄탄했다 강추합니다",  # 0
        "연기가정말좋았고 스토리도 탄탄했다!! 강추합니다ㅋㅋㅋㅋ",  # 1: spacing, punctuation, ㅋ
        "연기가 정말 좋았고 스토리도 탄탄했다 강추합니당",  # 2: one-syllable typo
        "연기가 정말 좋았고 스토리도 탄탄했다 강추합니다",  # 3: exact copy of 0
        "음악이 너무 시끄럽고 배우들 발연기에 지루했다",  # 4: unrelated
        "짧은 리뷰",
    ]  # 5: too short for fuzzy
    params = MinHashParams()
    keys = [canonical(t) for t in texts]
    assert keys[0] == canonical("연기가 정말, 좋았고... 스토리도 탄탄했다 강추합니다")
    bands, hashed = MinHasher(params).band_hashes(keys)
    assert hashed.tolist() == [True] * 5 + [False]
    ids = np.array([10, 11, 12, 13, 14, 15])
    remove, of, is_exact = find_duplicates(ids, np.array([exact_key(t) for t in texts]), bands, hashed, keys, params)
    assert dict(zip(remove.tolist(), of.tolist())) == {11: 10, 12: 10, 13: 10}
    assert dict(zip(remove.tolist(), is_exact.tolist())) == {11: False, 12: False, 13: True}


def test_minhash_band_hashes_do_not_depend_on_batching():
    keys = [canonical(f"테스트 문장 번호 {i} 입니다 영화가 재밌어요") for i in range(5000)]
    hasher = MinHasher(MinHashParams())
    whole, _ = hasher.band_hashes(keys)
    parts = np.concatenate([hasher.band_hashes(keys[i : i + 700])[0] for i in range(0, 5000, 700)])
    assert (whole == parts).all()


def test_toxicity_model_scores_hate_speech_and_round_trips(tmp_path, data_dir):
    from kollm.curation import toxicity
    from kollm.data import sources

    model, metrics = toxicity.train(
        sources.iter_hate_labeled(data_dir, "train"), sources.iter_hate_labeled(data_dir, "dev")
    )
    assert metrics["dev_f1"] > 0.75 and metrics["dev_examples"] == 471
    model.save(str(tmp_path / "tox.npz"))
    again = toxicity.CharNgramClassifier.load(str(tmp_path / "tox.npz"))
    texts = ["정말 재밌게 봤어요 배우들 연기 최고", "이 병신같은 새끼들 다 꺼져라"]
    assert np.allclose(model.score(texts), again.score(texts))
    low, high = again.score(texts)
    assert low < 0.5 < high
