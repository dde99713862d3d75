import unicodedata

from kollm.config import CurateConfig
from kollm.curate import Curator, hangul_ratio, normalize, removal_reason, repeat_ratio


def test_normalize_composes_nfd_hangul_and_collapses_spaces():
    nfd = unicodedata.normalize("NFD", "한국어   영화\n리뷰")
    assert nfd != "한국어 영화 리뷰"
    assert normalize(nfd) == "한국어 영화 리뷰"


def test_hangul_ratio_counts_syllables_and_jamo():
    assert hangul_ratio("재밌어요 ㅋㅋ") == 1.0
    assert hangul_ratio("good movie") == 0.0
    assert hangul_ratio("최고 best") == 2 / 6  # spaces do not count


def test_repeat_ratio_sees_runs_of_four_or_more():
    assert repeat_ratio("ㅋㅋㅋ") == 0.0
    assert repeat_ratio("ㅋㅋㅋㅋㅋㅋㅋㅋ") == 1.0


def test_removal_reasons():
    cfg = CurateConfig()
    assert removal_reason("", cfg) == "empty"
    assert removal_reason("굿", cfg) == "too_short"
    assert removal_reason("가" * 3000, cfg) == "too_long"
    assert removal_reason("여기 보세요 http://spam.example 대박", cfg) == "url"
    assert removal_reason("This movie is great fun", cfg) == "low_hangul_ratio"
    assert removal_reason("ㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋ 웃김", cfg) == "repetition"
    assert removal_reason("연기가 정말 좋았고 스토리도 탄탄했다", cfg) is None


def test_dedup_ignores_spacing_and_points_at_the_original():
    curator = Curator(CurateConfig())
    first, r1 = curator({"id": "a", "text": "정말 재밌는 영화"})
    second, r2 = curator({"id": "b", "text": "정말재밌는  영화"})
    assert r1 is None and r2 == "exact_duplicate" and second["duplicate_of"] == "a"


def test_every_real_document_is_kept_or_removed(nsmc_rows, tmp_path):
    import json

    from kollm.stages.curate import curate_file

    src = tmp_path / "raw.jsonl"
    with open(src, "w") as f:
        for r in nsmc_rows[:5000]:
            f.write(json.dumps({"id": str(r["review_id"]), "text": r["text"]}, ensure_ascii=False) + "\n")
    counts = curate_file(str(src), str(tmp_path / "kept.jsonl"), str(tmp_path / "removed.jsonl"), Curator(CurateConfig()))
    kept = [json.loads(line) for line in open(tmp_path / "kept.jsonl")]
    removed = [json.loads(line) for line in open(tmp_path / "removed.jsonl")]
    assert counts["in"] == 5000 == len(kept) + len(removed)
    assert counts["removed_by_reason"]["exact_duplicate"] > 0  # real NSMC is full of duplicates
    assert {d["id"] for d in kept} | {d["id"] for d in removed} == {str(r["review_id"]) for r in nsmc_rows[:5000]}
    assert all(d["reason"] for d in removed)
