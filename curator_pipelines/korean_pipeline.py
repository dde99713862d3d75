"""The Korean curation pipeline on NeMo Curator: filter, dedup, account for every line.

    phase 1  (Curator Pipeline, per shard, resumable)
             read + quarantine -> NFC -> PII redaction -> length / eojeol / Hangul ratio /
             jamo / runs / repeated n-grams / URLs / boilerplate -> language id -> toxicity
             -> exact + MinHash signatures -> shard writer (candidates, removed, stats)
    phase 2  (global) exact and fuzzy duplicate groups -> work/dedup/duplicate_ids.parquet
             (column `id` = `_curator_dedup_id` to remove: the contract of Curator's GPU
             exact/fuzzy workflows, so either identification feeds the same removal)
    phase 3  (Curator Pipeline, per shard, resumable) Curator's TextDuplicatesRemovalStage
             -> kept/<shard>.jsonl|parquet, removed/<shard>.dedup.jsonl

Output folder: kept/, removed/ (stage, reason, score, file, line, text), quarantine/
(file, line, error, raw), summary.json + summary.md (per stage: in, kept, removed),
datacard.md + histogram PNGs.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from nemo_curator.pipeline import Pipeline
from nemo_curator.stages.base import ProcessingStage
from nemo_curator.stages.text.deduplication.removal import TextDuplicatesRemovalStage
from nemo_curator.stages.text.modifiers.modifier import Modify
from nemo_curator.tasks import DocumentBatch, FileGroupTask
from tqdm import tqdm

from curator_pipelines import filters as F
from curator_pipelines.datacard import summary_markdown, write_datacard
from curator_pipelines.scheduling import make_executor
from curator_pipelines.stages import (
    DEDUP_ID,
    AccountedFilter,
    DedupSignatures,
    ReadCandidates,
    ReadShard,
    Shard,
    ShardWriter,
    plan_shards,
    removed_record,
)
from kollm.config import CurateConfig
from kollm.core.io import atomic_open, sha256_file, write_json
from kollm.curation.minhash import MinHashParams, find_duplicates

VERSION = 1  # bump when stage logic changes: finished shards of an older version are redone


def minhash_params(cfg: CurateConfig) -> MinHashParams:
    return MinHashParams(
        ngram=cfg.minhash_ngram,
        bands=cfg.minhash_bands,
        rows=cfg.minhash_rows,
        jaccard_threshold=cfg.jaccard_threshold,
        min_chars=cfg.fuzzy_min_chars,
    )


def document_filters(cfg: CurateConfig, toxicity_model: str | None) -> list:
    """The filters in the order they run; each removed document is filed under the first that fails."""
    fs = [
        F.CharLengthFilter("too_short_or_long", cfg.min_chars, cfg.max_chars),
        F.EojeolCountFilter("eojeol_count", cfg.min_eojeol, cfg.max_eojeol),
        F.UrlFilter("url", None, cfg.max_urls),
        F.BoilerplateFilter("boilerplate", None, 0),
        F.HangulRatioFilter("low_hangul_ratio", cfg.min_hangul_ratio, None),
        F.JamoRatioFilter("jamo_noise", None, cfg.max_jamo_ratio),
        F.CharRunFilter("char_runs", None, cfg.max_char_run_ratio),
        F.RepeatedNgramFilter("repeated_ngrams", None, cfg.max_repeated_ngram_ratio),
        F.KoreanLangId(min_langid_score=cfg.min_langid_score),
    ]
    if toxicity_model:
        fs.append(F.ToxicityFilter(toxicity_model, cfg.max_toxicity))
    return fs


def filter_stages(cfg: CurateConfig, toxicity_model: str | None, text_field: str = "text") -> list[ProcessingStage]:
    return (
        [
            ReadShard(text_field=text_field),
            Modify(modifier_fn=[F.NFCNormalizer(), F.PiiRedactor()], input_fields="text"),
        ]
        + [AccountedFilter(f) for f in document_filters(cfg, toxicity_model)]
        + [DedupSignatures(minhash_params(cfg))]
    )


def _fingerprint(cfg: CurateConfig, inputs: list[str], toxicity_model: str | None, text_field: str) -> str:
    h = hashlib.sha256(
        json.dumps({"v": VERSION, "cfg": dataclasses.asdict(cfg), "text_field": text_field}, sort_keys=True).encode()
    )
    for path in inputs:  # inputs can be huge: their size and mtime, not their content
        st = os.stat(path)
        h.update(f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
    if toxicity_model:  # small, and rewritten by whoever trains it: what it holds, not when it was written
        h.update(sha256_file(toxicity_model).encode())
    # executor and shard size don't change the output
    return h.hexdigest()[:16]


def _done(path: str, fingerprint: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("fingerprint") == fingerprint
    except (OSError, ValueError):
        return False  # missing or torn: redo


class _Progress:
    """docs/s over shards finished (tqdm), for whatever executor reports back."""

    def __init__(self, desc: str, total: int | None, enabled: bool):
        self.bar = tqdm(
            total=total, desc=desc, unit="doc", unit_scale=True, mininterval=2, disable=not enabled, file=sys.stderr
        )

    def __call__(self, _initial, result) -> None:
        self.bar.update(result._metadata.get("docs", 0))

    def close(self) -> None:
        self.bar.close()


def _run(
    stages: list[ProcessingStage], tasks: list, cfg: CurateConfig, desc: str, total: int | None, progress: bool
) -> list:
    bar = _Progress(desc, total, progress)
    try:
        executor, stages = make_executor(cfg.executor, cfg.ray_cpus_per_stage, stages, cfg.workers, bar)
        results = Pipeline(name=f"kollm-korean-{desc}", stages=stages).run(executor, initial_tasks=tasks) or []
        if cfg.executor != "inprocess":
            for r in results:
                bar(None, r)
        return results
    finally:
        bar.close()


@dataclasses.dataclass
class DuplicatesRemoval(TextDuplicatesRemovalStage):
    """Curator's removal stage; an empty shard (every line filtered) passes through, where
    Curator's would read the id list with a NaN range and fail."""

    def process(self, task: DocumentBatch) -> DocumentBatch:
        return task if len(task.to_pandas()) == 0 else super().process(task)


@dataclasses.dataclass
class FinalWriter(ProcessingStage[DocumentBatch, FileGroupTask]):
    """Kept documents in their original shape (+ lang_score, toxicity); duplicates to removed/."""

    out_dir: str
    duplicates_path: str
    fingerprint: str
    text_field: str = "text"
    output_format: str = "jsonl"
    name: str = "write_kept"

    def process(self, batch: DocumentBatch) -> FileGroupTask:
        df = batch.to_pandas()
        shard = batch._metadata["shard"]
        name = shard["name"]
        gone = np.setdiff1d(batch._metadata["candidate_ids"], df[DEDUP_ID].to_numpy())
        n_removed = {"exact_duplicate": 0, "near_duplicate": 0}
        with atomic_open(os.path.join(self.out_dir, "removed", f"{name}.dedup.jsonl")) as f:
            if len(gone):
                dups = pd.read_parquet(self.duplicates_path, filters=[("id", "in", gone.tolist())])
                cand = pq.read_table(
                    os.path.join(self.out_dir, "work", "candidates", f"{name}.parquet"),
                    columns=["id", "text", "_file", "_line", DEDUP_ID],
                ).to_pandas()
                rows = cand[cand[DEDUP_ID].isin(gone)].merge(
                    dups, left_on=DEDUP_ID, right_on="id", suffixes=("", "_dup")
                )
                for row in rows.to_dict("records"):
                    stage = "exact_dedup" if row["reason"] == "exact_duplicate" else "fuzzy_dedup"
                    f.write(
                        json.dumps(
                            removed_record(row, row["reason"], stage, duplicate_of=row["duplicate_of_doc"]),
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
                    n_removed[row["reason"]] += 1
        if sum(n_removed.values()) != len(gone):
            raise RuntimeError(f"shard {name}: {len(gone)} removed by dedup but {sum(n_removed.values())} listed")
        docs = []
        for extra, doc_id, text, lang_score, tox in zip(
            df["_extra"],
            df["id"],
            df["text"],
            df.get("score_lang_id", pd.Series([None] * len(df))),
            df.get("score_toxicity", pd.Series([None] * len(df))),
        ):
            doc = json.loads(extra)
            doc.setdefault("id", doc_id)
            doc[self.text_field] = text
            doc["lang_score"] = None if lang_score is None else round(float(lang_score), 4)
            doc["toxicity"] = None if tox is None or tox != tox else round(float(tox), 4)
            docs.append(doc)
        path = os.path.join(self.out_dir, "kept", f"{name}.{self.output_format}")
        if self.output_format == "parquet":
            os.makedirs(os.path.dirname(path), exist_ok=True)
            pq.write_table(pa.Table.from_pylist(docs), path + ".tmp")
            os.replace(path + ".tmp", path)
        else:
            with atomic_open(path) as f:
                for doc in docs:
                    f.write(json.dumps(doc, ensure_ascii=False) + "\n")
        stats = {"shard": shard, "fingerprint": self.fingerprint, "kept": len(docs), **n_removed}
        write_json(os.path.join(self.out_dir, "work", "final", f"{name}.json"), stats)  # last: marks done
        return FileGroupTask(dataset_name=name, data=[path], _metadata={"stats": stats, "docs": len(docs) + len(gone)})


def identify_duplicates(out_dir: str, shards: list[Shard], cfg: CurateConfig, fingerprint: str) -> str:
    """Exact + fuzzy groups over all shards -> duplicate_ids.parquet (id, duplicate_of, reason).

    Fuzzy groups come from kollm's CPU MinHash, or from Curator's GPU workflow (gpu_dedup.py).
    """
    from curator_pipelines import gpu_dedup

    params, gpu = minhash_params(cfg), cfg.fuzzy_dedup and gpu_dedup.use_gpu(cfg)
    path = os.path.join(out_dir, "work", "dedup", "duplicate_ids.parquet")
    marker = path + ".json"
    if _done(marker, fingerprint) and os.path.exists(path):
        return path
    cols = ["id", DEDUP_ID, "_exact", "_key", "_bands", "_hashed"]
    parts = [
        pq.read_table(os.path.join(out_dir, "work", "candidates", f"{s.name}.parquet"), columns=cols) for s in shards
    ]
    table = pa.concat_tables(parts).to_pandas()
    ids = table[DEDUP_ID].to_numpy()
    hashed = table["_hashed"].to_numpy() & (cfg.fuzzy_dedup and not gpu)
    bands = np.zeros((len(table), params.bands), dtype=np.uint64)
    if hashed.any():
        rows = np.flatnonzero(hashed)
        bands[rows] = np.frombuffer(b"".join(table["_bands"].to_numpy()[rows]), dtype=np.uint64).reshape(
            -1, params.bands
        )
    remove, of, is_exact = find_duplicates(
        ids, table["_exact"].to_numpy(), bands, hashed, table["_key"].tolist(), params
    )
    doc_id = pd.Series(table["id"].to_numpy(), index=ids)
    out = pd.DataFrame(
        {
            "id": remove,
            "duplicate_of": of,
            "reason": np.where(is_exact, "exact_duplicate", "near_duplicate"),
            "duplicate_of_doc": doc_id.loc[of].to_numpy() if len(of) else np.array([], dtype=object),
        }
    )
    if gpu:  # Curator's workflow names the ids to remove, not what they duplicate
        near = np.setdiff1d(gpu_dedup.run_gpu_fuzzy(cfg, out_dir), remove)
        out = pd.concat(
            [out, pd.DataFrame({"id": near, "duplicate_of": -1, "reason": "near_duplicate", "duplicate_of_doc": None})]
        )
    out = out.sort_values("id", kind="stable")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pandas(out, preserve_index=False), path + ".tmp")
    os.replace(path + ".tmp", path)
    write_json(marker, {"fingerprint": fingerprint, "removed": len(out)})
    return path


def curate(
    inputs: list[str],
    out_dir: str,
    cfg: CurateConfig,
    toxicity_model: str | None = None,
    text_field: str = "text",
    progress: bool = True,
) -> dict:
    """Run the whole pipeline; finished shards of an identical earlier run are skipped."""
    t0 = time.time()
    fingerprint = _fingerprint(cfg, inputs, toxicity_model, text_field)
    state = os.path.join(out_dir, "work", "run.json")
    if not _done(state, fingerprint) and os.path.exists(out_dir):
        for sub in ("work", "kept", "removed", "quarantine"):  # a different run: start clean
            shutil.rmtree(os.path.join(out_dir, sub), ignore_errors=True)
    os.makedirs(os.path.join(out_dir, "work"), exist_ok=True)
    write_json(state, {"fingerprint": fingerprint, "inputs": inputs})
    shards = plan_shards(inputs, cfg.shard_docs)
    total = sum(s.lines for s in shards) if all(s.lines >= 0 for s in shards) else None

    todo = [s for s in shards if not _done(os.path.join(out_dir, "work", "shards", f"{s.name}.json"), fingerprint)]
    timings = {}
    t = time.time()
    if todo:
        stages = filter_stages(cfg, toxicity_model, text_field) + [ShardWriter(out_dir, fingerprint)]
        _run(stages, [s.task() for s in todo], cfg, "filter", total, progress)
    timings["filter_s"] = round(time.time() - t, 2)

    t = time.time()
    # shard outputs are a function of the run's fingerprint, so it and the shard layout decide dedup
    dup_fp = hashlib.sha256((fingerprint + ",".join(s.name for s in shards)).encode()).hexdigest()[:16]
    dup_path = identify_duplicates(out_dir, shards, cfg, dup_fp)
    timings["dedup_s"] = round(time.time() - t, 2)

    t = time.time()
    todo = [s for s in shards if not _done(os.path.join(out_dir, "work", "final", f"{s.name}.json"), dup_fp)]
    if todo:
        stages = [
            ReadCandidates(out_dir),
            DuplicatesRemoval(ids_to_remove_path=dup_path, id_field=DEDUP_ID, duplicate_id_field="id"),
            FinalWriter(out_dir, dup_path, dup_fp, text_field, cfg.output_format),
        ]
        _run(stages, [s.task() for s in todo], cfg, "removal", None, progress)
    timings["removal_s"] = round(time.time() - t, 2)
    summary = summarize(out_dir, shards, document_filters(cfg, toxicity_model))  # constructing loads no model
    summary["timings"] = {**timings, "total_s": round(time.time() - t0, 2)}
    write_json(os.path.join(out_dir, "summary.json"), summary)
    with atomic_open(os.path.join(out_dir, "summary.md")) as f:
        f.write(summary_markdown(summary))
    write_datacard(out_dir, summary, thresholds(cfg))
    return summary


def thresholds(cfg: CurateConfig) -> dict[str, list[float]]:
    """Cut-offs per score, for the data card's histograms."""
    out = {
        f.name: [v for v in (f.min_value, f.max_value) if v is not None]
        for f in document_filters(cfg, None)
        if isinstance(f, F._Threshold)
    }
    out["lang_id"], out["toxicity"] = [cfg.min_langid_score], [cfg.max_toxicity]
    return out


def _shard_stats(out_dir: str, names: list[str] | None = None):
    """(filter-phase stats, removal-phase stats) of each finished shard, in shard order."""
    if names is None:
        names = [
            os.path.basename(p)[: -len(".json")]
            for p in sorted(glob.glob(os.path.join(out_dir, "work", "shards", "*.json")))
        ]
    for name in names:
        with open(os.path.join(out_dir, "work", "shards", f"{name}.json"), encoding="utf-8") as f:
            st = json.load(f)
        with open(os.path.join(out_dir, "work", "final", f"{name}.json"), encoding="utf-8") as f:
            yield st, json.load(f)


def summarize(out_dir: str, shards: list[Shard], filters: list) -> dict:
    """Per-stage in/kept/removed over all shards, and the identity check."""
    lines_in = quarantined = kept = 0
    removed: dict[str, int] = {}
    for st, fin in _shard_stats(out_dir, [s.name for s in shards]):
        lines_in += st["lines_in"]
        quarantined += st["quarantined"]
        for key, n in st["removed_by"].items():
            removed[key] = removed.get(key, 0) + n
        for reason, stage in (("exact_duplicate", "exact_dedup"), ("near_duplicate", "fuzzy_dedup")):
            removed[f"{stage}:{reason}"] = removed.get(f"{stage}:{reason}", 0) + fin[reason]
        kept += fin["kept"]
    table, n = [], lines_in
    table.append(
        {"stage": "read", "in": n, "kept": n - quarantined, "removed": quarantined, "reason": "quarantined (malformed)"}
    )
    n -= quarantined
    order = [(f.name, f.reason) for f in filters] + [
        ("exact_dedup", "exact_duplicate"),
        ("fuzzy_dedup", "near_duplicate"),
    ]
    for stage, reason in order:
        r = removed.get(f"{stage}:{reason}", 0)
        table.append({"stage": stage, "in": n, "kept": n - r, "removed": r, "reason": reason})
        n -= r
    total_removed = sum(removed.values())
    if lines_in != kept + quarantined + total_removed or n != kept:
        raise RuntimeError(
            f"accounting identity broken: {lines_in} in, {kept} kept, {total_removed} removed, "
            f"{quarantined} quarantined"
        )
    return {
        "lines_in": lines_in,
        "kept": kept,
        "removed": total_removed,
        "quarantined": quarantined,
        "shards": len(shards),
        "stages": table,
    }


def counts_by_input(out_dir: str) -> dict[str, dict]:
    """Per input file: in, kept, removed (by reason), quarantined; in = kept + removed + quarantined."""
    out: dict[str, dict] = {}
    for st, fin in _shard_stats(out_dir):
        c = out.setdefault(
            st["shard"]["path"], {"in": 0, "kept": 0, "removed": 0, "quarantined": 0, "removed_by_reason": {}}
        )
        reasons = {k.split(":", 1)[1]: n for k, n in st["removed_by"].items()}
        reasons.update({r: fin[r] for r in ("exact_duplicate", "near_duplicate")})
        c["in"] += st["lines_in"]
        c["kept"] += fin["kept"]
        c["quarantined"] += st["quarantined"]
        for r, n in reasons.items():
            c["removed_by_reason"][r] = c["removed_by_reason"].get(r, 0) + n
            c["removed"] += n
    return out
