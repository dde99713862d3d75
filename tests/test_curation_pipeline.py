"""The Curator Korean pipeline end to end on real NSMC reviews with planted malformed lines:
accounting, quarantine, executors (in-process, forked workers, Ray), resume after SIGKILL."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from kollm.config import CurateConfig

MALFORMED = [  # (raw bytes of a line, the error the quarantine must give)
    (b'{"id": "bad-json", "text": ', "bad JSON"),
    (b'{"id": "bad-utf8", "text": "\xed\x95\x9c\xff\xfe"}', "invalid UTF-8"),
    (b'{"id": "no-text"}', "missing text field"),
    (b'{"id": "empty", "text": "   "}', "empty text"),
    (b'["a", "list"]', "not a JSON object"),
    (b'{"id": "number", "text": 42}', "text field is int"),
    (b"", "blank line"),
]


def write_corpus(path, rows, every=700):
    """Real reviews, with one malformed line planted every `every` lines; returns expected quarantine lines."""
    bad_lines, line = {}, 0
    with open(path, "wb") as f:
        for i, r in enumerate(rows):
            if i % every == every - 1:
                raw, err = MALFORMED[(i // every) % len(MALFORMED)]
                line += 1
                f.write(raw + b"\n")
                bad_lines[line] = err
            line += 1
            f.write(
                json.dumps(
                    {"id": f"nsmc:{r['review_id']}", "text": r["text"], "rating": r["rating"]}, ensure_ascii=False
                ).encode()
                + b"\n"
            )
    return bad_lines


def read_dir(folder):
    return {
        os.path.relpath(p, folder): open(p, "rb").read()
        for sub in ("kept", "removed", "quarantine")
        for p in sorted(glob.glob(os.path.join(folder, sub, "*")))
    }


@pytest.fixture(scope="module")
def corpus(nsmc_rows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("curation_in")
    bad = write_corpus(folder / "reviews.jsonl", nsmc_rows[:6000])
    return str(folder / "reviews.jsonl"), bad


@pytest.fixture(scope="module")
def toxicity_model(data_dir, tmp_path_factory):
    from kollm.curation import toxicity
    from kollm.data import sources

    model, _ = toxicity.train(sources.iter_hate_labeled(data_dir, "train"), sources.iter_hate_labeled(data_dir, "dev"))
    path = str(tmp_path_factory.mktemp("tox") / "toxicity.npz")
    model.save(path)
    return path


@pytest.fixture(scope="module")
def reference(corpus, toxicity_model, tmp_path_factory):
    """One uninterrupted in-process run (workers=1): what every other way of running must reproduce."""
    from curator_pipelines.korean_pipeline import curate

    out = str(tmp_path_factory.mktemp("curation_ref"))
    summary = curate([corpus[0]], out, CurateConfig(shard_docs=1000, workers=1), toxicity_model, progress=False)
    return out, summary


def test_every_line_is_kept_removed_or_quarantined(corpus, reference):
    path, bad = corpus
    out, summary = reference
    n_lines = sum(1 for _ in open(path, "rb"))
    assert summary["lines_in"] == n_lines == 6000 + len(bad)
    assert summary["lines_in"] == summary["kept"] + summary["removed"] + summary["quarantined"]
    kept = [json.loads(x) for p in glob.glob(f"{out}/kept/*.jsonl") for x in open(p, encoding="utf-8")]
    removed = [json.loads(x) for p in glob.glob(f"{out}/removed/*.jsonl") for x in open(p, encoding="utf-8")]
    quarantined = [json.loads(x) for p in glob.glob(f"{out}/quarantine/*.jsonl") for x in open(p, encoding="utf-8")]
    assert (len(kept), len(removed), len(quarantined)) == (summary["kept"], summary["removed"], summary["quarantined"])
    # every malformed line is quarantined with its file, line number and the reason
    planted = {q["line"]: q["error"] for q in quarantined if q["line"] in bad}
    assert set(planted) == set(bad)
    assert all(planted[line].startswith(err) for line, err in bad.items())
    assert all(q["file"] == path for q in quarantined)
    # every good line's id is in exactly one place: kept or removed
    good = []
    for raw in open(path, "rb"):
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(obj, dict) and isinstance(obj.get("text"), str) and obj["text"].strip():
            good.append(obj["id"])
    placed = [d["id"] for d in kept] + [d["id"] for d in removed]
    assert sorted(placed) == sorted(good) and len(set(placed)) == len(placed)
    # removed documents say by which stage and why; duplicates say of what
    assert all(d["stage"] and d["reason"] and d["file"] == path and d["line"] >= 1 for d in removed)
    reasons = {d["reason"] for d in removed}
    assert {"too_short_or_long", "exact_duplicate", "low_hangul_ratio"} <= reasons
    kept_ids = {d["id"] for d in kept}
    assert all(d["duplicate_of"] in kept_ids for d in removed if d["reason"].endswith("duplicate"))
    # kept documents keep their fields, text normalised, scores attached
    assert all(set(d) >= {"id", "text", "rating", "lang_score", "toxicity"} for d in kept)


def test_summary_table_and_datacard(reference):
    out, summary = reference
    stages = summary["stages"]
    assert stages[0]["in"] == summary["lines_in"] and stages[-1]["kept"] == summary["kept"]
    for a, b in zip(stages, stages[1:]):  # each stage's input is the previous stage's output
        assert b["in"] == a["kept"] and a["in"] == a["kept"] + a["removed"]
    table = open(f"{out}/summary.md", encoding="utf-8").read()
    assert "| fuzzy_dedup |" in table and f"{summary['kept']:,} kept" in table
    card = open(f"{out}/datacard.md", encoding="utf-8").read()
    for name in ("low_hangul_ratio", "lang_id", "toxicity", "too_short_or_long"):
        assert f"hist_{name}.png" in card and os.path.getsize(f"{out}/hist_{name}.png") > 2000
    assert "**exact_dedup: exact_duplicate**" in card and "**quarantine: bad JSON**" in card


def test_forked_workers_give_identical_output(corpus, toxicity_model, reference, tmp_path):
    from curator_pipelines.korean_pipeline import curate

    curate([corpus[0]], str(tmp_path), CurateConfig(shard_docs=1000, workers=2), toxicity_model, progress=False)
    assert read_dir(str(tmp_path)) == read_dir(reference[0])


def test_rerun_skips_finished_work(corpus, toxicity_model, reference, tmp_path):
    from curator_pipelines.korean_pipeline import curate

    cfg = CurateConfig(shard_docs=1000, workers=1)
    curate([corpus[0]], str(tmp_path), cfg, toxicity_model, progress=False)
    stamp = {p: os.stat(p).st_mtime_ns for p in glob.glob(f"{tmp_path}/work/**/*.*", recursive=True)}
    summary = curate([corpus[0]], str(tmp_path), cfg, toxicity_model, progress=False)
    assert summary["timings"]["filter_s"] < 0.5
    markers = {p: t for p, t in stamp.items() if {"shards", "final"} & set(p.split(os.sep))}
    assert markers and all(os.stat(p).st_mtime_ns == t for p, t in markers.items())
    # a changed threshold is a different run: everything is redone
    changed = curate(
        [corpus[0]],
        str(tmp_path),
        CurateConfig(shard_docs=1000, workers=1, min_chars=10),
        toxicity_model,
        progress=False,
    )
    assert changed["kept"] < summary["kept"]


def test_killed_run_resumes_to_identical_output(corpus, toxicity_model, reference, tmp_path):
    out = tmp_path / "out"
    code = (
        "import sys; from curator_pipelines.korean_pipeline import curate; from kollm.config import CurateConfig; "
        "curate([sys.argv[1]], sys.argv[2], CurateConfig(shard_docs=1000, workers=1), sys.argv[3], progress=False)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, corpus[0], str(out), toxicity_model],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while len(glob.glob(f"{out}/work/shards/*.json")) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = sorted(glob.glob(f"{out}/work/shards/*.json"))
    assert 2 <= len(done_before) < 7 and not (out / "summary.json").exists(), "the run was not cut mid-way"
    stamps = {p: os.stat(p).st_mtime_ns for p in done_before}

    from curator_pipelines.korean_pipeline import curate

    curate([corpus[0]], str(out), CurateConfig(shard_docs=1000, workers=1), toxicity_model, progress=False)
    assert all(os.stat(p).st_mtime_ns == t for p, t in stamps.items())  # finished shards were not redone
    assert read_dir(str(out)) == read_dir(reference[0])


def test_parquet_output(corpus, toxicity_model, reference, tmp_path):
    import pyarrow.parquet as pq

    from curator_pipelines.korean_pipeline import curate

    summary = curate(
        [corpus[0]],
        str(tmp_path),
        CurateConfig(shard_docs=1000, output_format="parquet"),
        toxicity_model,
        progress=False,
    )
    rows = [r for p in sorted(glob.glob(f"{tmp_path}/kept/*.parquet")) for r in pq.read_table(p).to_pylist()]
    ref = [json.loads(x) for p in sorted(glob.glob(f"{reference[0]}/kept/*.jsonl")) for x in open(p, encoding="utf-8")]
    assert summary["kept"] == len(rows) == len(ref)
    assert [r["text"] for r in rows] == [r["text"] for r in ref]


@pytest.mark.slow
def test_ray_executor_gives_identical_output(corpus, toxicity_model, reference, tmp_path):
    """Curator's RayDataExecutor on a real local Ray (2 CPUs, fractional stage resources)."""
    from curator_pipelines.korean_pipeline import curate

    curate([corpus[0]], str(tmp_path), CurateConfig(shard_docs=1000, executor="ray"), toxicity_model, progress=False)
    assert read_dir(str(tmp_path)) == read_dir(reference[0])


def test_gpu_id_translation_maps_curator_ids_back(tmp_path):
    """The GPU workflow's ids (one id-generator range per file) map back to our dedup ids."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from nemo_curator.stages.deduplication.id_generator import IdGeneratorBase

    from curator_pipelines.gpu_dedup import fuzzy_workflow_kwargs, translate_ids

    files, gen = [], IdGeneratorBase()
    for shard, n in ((0, 3), (1, 2), (2, 4)):
        path = str(tmp_path / f"{shard}.parquet")
        pq.write_table(pa.table({"_curator_dedup_id": [(shard << 32) + line for line in range(1, n + 1)]}), path)
        files.append(path)
    for path in reversed(files):  # Curator may register files in any order
        gen.register_batch([path], pq.read_metadata(path).num_rows)
    gen.to_disk(str(tmp_path / "ids.json"))
    lo1 = gen.get_batch_range([files[1]], None)[0]
    lo2 = gen.get_batch_range([files[2]], None)[0]
    got = translate_ids(str(tmp_path / "ids.json"), np.array([lo1 + 1, lo2 + 3, lo2]), files)
    assert got.tolist() == [(1 << 32) + 2, (2 << 32) + 4, (2 << 32) + 1]
    kw = fuzzy_workflow_kwargs(CurateConfig(), str(tmp_path / "cache"), str(tmp_path / "out"))
    assert (kw["text_field"], kw["char_ngrams"], kw["num_bands"], kw["minhashes_per_band"]) == ("_key", 3, 20, 4)


@pytest.mark.gpu
def test_gpu_fuzzy_workflow_builds(tmp_path):
    """On a GPU host with cuDF: Curator's workflow accepts kollm's settings."""
    pytest.importorskip("cudf")
    from curator_pipelines.gpu_dedup import fuzzy_workflow

    wf = fuzzy_workflow(CurateConfig(), str(tmp_path / "cache"), str(tmp_path / "out"))
    assert (wf.text_field, wf.char_ngrams, wf.num_bands, wf.minhashes_per_band) == ("_key", 3, 20, 4)


def test_gzip_and_parquet_inputs_are_read_and_accounted(nsmc_rows, tmp_path):
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    from curator_pipelines.korean_pipeline import curate

    rows = [{"id": f"nsmc:{r['review_id']}", "text": r["text"]} for r in nsmc_rows[:1500]]
    with gzip.open(tmp_path / "a.jsonl.gz", "wt", encoding="utf-8") as f:
        for r in rows[:700]:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.write("not json\n")
    pq.write_table(pa.Table.from_pylist(rows[700:] + [{"id": "no-text", "text": None}]), tmp_path / "b.parquet")
    summary = curate(
        [str(tmp_path / "a.jsonl.gz"), str(tmp_path / "b.parquet")],
        str(tmp_path / "out"),
        CurateConfig(fuzzy_backend="cpu"),
        None,
        progress=False,
    )
    assert summary["lines_in"] == 1502 and summary["quarantined"] == 2
    q = sorted(
        (os.path.basename(x["file"]), x["line"], x["error"])
        for p in glob.glob(f"{tmp_path}/out/quarantine/*")
        for x in map(json.loads, open(p, encoding="utf-8"))
    )
    assert q == [("a.jsonl.gz", 701, "bad JSON: Expecting value"), ("b.parquet", 801, "missing text field 'text'")]
