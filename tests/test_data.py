import collections
import os

import pytest

from kollm.core.errors import KollmError
from kollm.data import sources
from kollm.data.split import in_corpus_sample, movie_split


def test_split_is_by_movie_and_deterministic(nsmc_rows):
    split_of = {}
    for r in nsmc_rows:
        s = movie_split(r["movie_id"], 0.1, 0.1)
        assert split_of.setdefault(r["movie_id"], s) == s  # no movie crosses splits
        assert movie_split(r["movie_id"], 0.1, 0.1) == s
    counts = collections.Counter(split_of.values())
    assert set(counts) == {"train", "val", "test"}
    assert 0.04 < counts["test"] / len(split_of) < 0.2


def test_readers_on_real_data(data_dir):
    hate = list(sources.iter_hate_labeled(data_dir, "train"))
    assert len(hate) == 7896 and {h["hate"] for h in hate} == {"hate", "offensive", "none"}
    klue = list(sources.iter_klue_sentences(data_dir))
    assert len(klue) > 5000
    assert not any("<" in s and ":PS>" in s for _, s in klue)  # NER markup stripped
    assert sources.nsmc_label(1) == 0 and sources.nsmc_label(10) == 1 and sources.nsmc_label(7) is None


def test_missing_data_dir_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(KollmError, match="lacks nsmc/reviews.jsonl.gz"):
        sources.resolve_data_dir(str(tmp_path))
    with pytest.raises(KollmError, match="no Korean data found"):
        sources.resolve_data_dir(str(tmp_path / "nope"))


def test_env_var_wins_over_shared(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KOLLM_DATA_DIR", data_dir)
    assert sources.resolve_data_dir() == os.path.abspath(data_dir)


def test_corpus_fraction_samples_every_source_and_never_the_labelled_splits(data_dir, data_files, tmp_path):
    """`data.corpus_fraction` (the tiny preset's shorter curation and tokenization) keeps the same share
    of each pretraining source, the same documents on every run, and leaves the task splits whole."""
    from kollm.core.io import read_jsonl
    from recipes import presets
    from stages import data

    half = data.run(presets.build("ci", [f"data.data_dir={data_dir}", "data.corpus_fraction=0.5"]), str(tmp_path))
    full_counts = {name: sum(1 for _ in read_jsonl(path)) for name, path in data_files.items()}
    for name in full_counts:
        if name != "corpus_raw":
            assert half["counts"][name] == full_counts[name], name
    full_ids = collections.Counter(r["source"] for r in read_jsonl(data_files["corpus_raw"]))
    kept = list(read_jsonl(half["outputs"].corpus_raw))
    for source, n in full_ids.items():
        share = half["corpus_by_source"].get(source, 0) / n
        assert 0.45 < share < 0.55 if n >= 1000 else 0 < share < 1, (source, n, share)
    assert {r["id"] for r in kept} <= {r["id"] for r in read_jsonl(data_files["corpus_raw"])}
    assert all(in_corpus_sample(r["id"], 0.5) for r in kept)


def test_corpus_fraction_out_of_range_is_a_one_line_error():
    from kollm import config
    from recipes import presets

    with pytest.raises(KollmError, match=r"data.corpus_fraction=0.0: a share of the documents, in \(0, 1\]"):
        config.validate(presets.build("ci", ["data.corpus_fraction=0"]))
