"""NeMo Curator stages for accounted, sharded, resumable Korean curation.

Curator's own ScoreFilter drops rows; here a filter *marks* them (`_removed` = reason,
`_stage` = stage name) and the shard writer files them under `removed/`, so every input
line ends in exactly one of: kept, removed (stage + reason), quarantined (file + line).

A shard is a line range of one input file: `plan_shards` cuts JSONL files every
`shard_docs` lines (gzip and Parquet files are one shard each). The shard writer's stats
file is written last, atomically: its presence marks the shard finished, so a killed
run restarted skips it.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from nemo_curator.stages.base import ProcessingStage
from nemo_curator.stages.text.filters.doc_filter import DocumentFilter
from nemo_curator.tasks import DocumentBatch, FileGroupTask

from kollm.core.io import atomic_open, line_ranges, write_json
from kollm.curation.minhash import MinHasher, MinHashParams, canonical, exact_key

DEDUP_ID = "_curator_dedup_id"  # Curator's id column for its removal stage
ALIVE = ""


@dataclasses.dataclass(frozen=True)
class Shard:
    index: int  # global order: decides dedup ids, so the earlier document of a pair is kept
    name: str
    path: str
    start: int = 0  # byte range within a plain JSONL file
    end: int = -1
    first_line: int = 1
    lines: int = -1  # known for plain JSONL; -1 for gzip / parquet

    def task(self) -> FileGroupTask:
        return FileGroupTask(dataset_name=self.name, data=[self.path], reader_config=dataclasses.asdict(self))


def plan_shards(inputs: list[str], shard_docs: int) -> list[Shard]:
    """Cut each input into shards of at most `shard_docs` lines, in input order."""
    shards: list[Shard] = []
    for file_no, path in enumerate(inputs):
        stem = f"{file_no:03d}-" + os.path.basename(path).split(".")[0]
        if path.endswith((".gz", ".parquet")):
            shards.append(Shard(len(shards), f"{stem}-00000", path))
            continue
        for chunk, (start, end, first_line, lines) in enumerate(line_ranges(path, shard_docs)):
            shards.append(Shard(len(shards), f"{stem}-{chunk:05d}", path, start, end, first_line, lines))
    return shards


def _raw_lines(shard: Shard):
    if shard.path.endswith(".gz"):
        with gzip.open(shard.path, "rb") as f:
            data = f.read()
    else:
        with open(shard.path, "rb") as f:
            f.seek(shard.start)
            data = f.read(shard.end - shard.start)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line is not another line
    return enumerate(lines, shard.first_line)


def _parquet_rows(shard: Shard):
    yield from enumerate(pq.read_table(shard.path).to_pylist(), 1)


@dataclasses.dataclass
class ReadShard(ProcessingStage[FileGroupTask, DocumentBatch]):
    """One shard -> a DocumentBatch; malformed lines -> `_metadata["quarantine"]`, never an error."""

    text_field: str = "text"
    id_field: str = "id"
    name: str = "read"

    def process(self, task: FileGroupTask) -> DocumentBatch:
        shard = Shard(**task.reader_config)
        rows, quarantine = [], []
        base = os.path.basename(shard.path)

        def bad(line: int, error: str, raw: str) -> None:
            quarantine.append({"file": shard.path, "line": line, "error": error, "raw": raw[:300]})

        source = _parquet_rows(shard) if shard.path.endswith(".parquet") else _raw_lines(shard)
        for line, raw in source:
            if isinstance(raw, bytes):
                try:
                    decoded = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    bad(line, f"invalid UTF-8 at byte {e.start}", raw.decode("utf-8", "replace"))
                    continue
                if not decoded.strip():
                    bad(line, "blank line", decoded)
                    continue
                try:
                    obj = json.loads(decoded)
                except json.JSONDecodeError as e:
                    bad(line, f"bad JSON: {e.msg}", decoded)
                    continue
            else:
                obj, decoded = raw, json.dumps(raw, ensure_ascii=False, default=str)
            if not isinstance(obj, dict):
                bad(line, f"not a JSON object ({type(obj).__name__})", decoded)
                continue
            text = obj.get(self.text_field)
            if not isinstance(text, str):
                bad(
                    line,
                    f"missing text field {self.text_field!r}"
                    if text is None
                    else f"text field is {type(text).__name__}, not a string",
                    decoded,
                )
                continue
            if not text.strip():
                bad(line, "empty text", decoded)
                continue
            doc_id = obj.get(self.id_field)
            extra = {k: v for k, v in obj.items() if k != self.text_field}
            rows.append(
                (
                    str(doc_id) if doc_id is not None else f"{base}:{line}",
                    text,
                    json.dumps(extra, ensure_ascii=False, default=str),
                    line,
                )
            )
        df = pd.DataFrame(rows, columns=["id", "text", "_extra", "_line"])
        df["_file"] = shard.path
        # deterministic ids, earlier shards lower: a duplicate keeps its first occurrence
        df[DEDUP_ID] = (np.int64(shard.index) << np.int64(32)) + df["_line"].astype(np.int64)
        df["_removed"] = ALIVE
        df["_stage"] = ALIVE
        lines_in = len(rows) + len(quarantine)
        return DocumentBatch(
            dataset_name=shard.name,
            data=df,
            _metadata={"shard": dataclasses.asdict(shard), "quarantine": quarantine, "lines_in": lines_in},
        )


@dataclasses.dataclass
class AccountedFilter(ProcessingStage[DocumentBatch, DocumentBatch]):
    """Score the documents still in play with `filter_obj`; mark (not drop) the failures.

    The score goes to column `score_<filter name>` (NaN for documents removed earlier), for
    the data card's histograms. Filters with `score_batch` are scored a batch at a time.
    """

    filter_obj: DocumentFilter
    text_field: str = "text"
    name: str = "filter"

    def __post_init__(self):
        self.name = self.filter_obj.name

    def setup(self, _=None) -> None:
        if hasattr(self.filter_obj, "load_model"):
            self.filter_obj.load_model()

    def process(self, batch: DocumentBatch) -> DocumentBatch:
        df = batch.to_pandas()
        alive = (df["_removed"] == ALIVE).to_numpy()
        texts = df[self.text_field].to_numpy()[alive].tolist()
        f = self.filter_obj
        column = f"score_{f.name}"
        if hasattr(f, "keep_batch"):  # language id: (confidence, language)
            scores, langs = f.score_batch(texts)
            keep = f.keep_batch(scores, langs, texts)
            lang_col = np.full(len(df), None, dtype=object)
            lang_col[alive] = langs
            df["lang"] = lang_col
        elif hasattr(f, "score_batch"):
            scores = f.score_batch(texts)
            keep = np.array([f.keep_document(s) for s in scores], dtype=bool)
        else:
            scores = np.array([f.score_document(t) for t in texts], dtype=np.float64)
            keep = np.array([f.keep_document(s) for s in scores], dtype=bool)
        col = np.full(len(df), np.nan)
        col[alive] = scores
        df[column] = col
        failed = np.flatnonzero(alive)[~keep] if len(texts) else np.array([], dtype=int)
        if len(failed):
            df.iloc[failed, df.columns.get_loc("_removed")] = f.reason
            df.iloc[failed, df.columns.get_loc("_stage")] = self.name
        return DocumentBatch(
            dataset_name=batch.dataset_name, data=df, _metadata=batch._metadata, _stage_perf=batch._stage_perf
        )


@dataclasses.dataclass
class DedupSignatures(ProcessingStage[DocumentBatch, DocumentBatch]):
    """Exact key (text modulo whitespace) and MinHash-LSH band hashes of documents in play."""

    params: MinHashParams = dataclasses.field(default_factory=MinHashParams)
    name: str = "dedup_signatures"

    def setup(self, _=None) -> None:
        self._hasher = MinHasher(self.params)

    def process(self, batch: DocumentBatch) -> DocumentBatch:
        if not hasattr(self, "_hasher"):
            self.setup()
        df = batch.to_pandas()
        alive = (df["_removed"] == ALIVE).to_numpy()
        texts = df["text"].to_numpy()[alive].tolist()
        keys = [canonical(t) for t in texts]
        bands, hashed = self._hasher.band_hashes(keys)
        n = len(df)
        exact = np.zeros(n, dtype=np.int64)
        exact[alive] = [exact_key(t) for t in texts]
        key_col = np.full(n, "", dtype=object)
        key_col[alive] = keys
        band_col = np.full(n, b"", dtype=object)
        band_col[alive] = [row.tobytes() for row in bands]
        hashed_col = np.zeros(n, dtype=bool)
        hashed_col[alive] = hashed
        df["_exact"], df["_key"], df["_bands"], df["_hashed"] = exact, key_col, band_col, hashed_col
        return DocumentBatch(
            dataset_name=batch.dataset_name, data=df, _metadata=batch._metadata, _stage_perf=batch._stage_perf
        )


_TYPES = {"_line": pa.int64(), DEDUP_ID: pa.int64(), "_exact": pa.int64(), "_bands": pa.binary(), "_hashed": pa.bool_()}


def candidate_schema(columns) -> pa.Schema:
    """Fixed column types, so an all-removed (empty) shard still concatenates with the others."""
    return pa.schema([(c, pa.float64() if c.startswith("score_") else _TYPES.get(c, pa.string())) for c in columns])


# Histogram bins per score (for the data card); values past the last edge land in the last bin.
HIST_BINS = {
    "too_short_or_long": np.arange(0, 305, 5),
    "eojeol_count": np.arange(0, 82, 2),
    "url": np.arange(0, 6),
    "boilerplate": np.array([0, 0.5, 1]),
}
RATIO_BINS = np.linspace(0, 1, 51)


def histogram(name: str, values: np.ndarray) -> dict:
    bins = HIST_BINS.get(name, RATIO_BINS)
    counts, _ = np.histogram(np.clip(values, bins[0], bins[-1]), bins=bins)
    return {"edges": bins.tolist(), "counts": counts.tolist()}


def removed_record(row: dict, reason: str, stage: str, **extra) -> dict:
    return {
        "id": row["id"],
        "file": row["_file"],
        "line": int(row["_line"]),
        "stage": stage,
        "reason": reason,
        "text": row["text"],
        **extra,
    }


@dataclasses.dataclass
class ShardWriter(ProcessingStage[DocumentBatch, FileGroupTask]):
    """Write a shard's candidates (Parquet), removed and quarantined lines (JSONL), then its stats."""

    out_dir: str
    fingerprint: str
    name: str = "write_shard"

    def process(self, batch: DocumentBatch) -> FileGroupTask:
        df = batch.to_pandas()
        shard = batch._metadata["shard"]
        name = shard["name"]
        alive = df["_removed"] == ALIVE
        candidates = df[alive].drop(columns=["_removed", "_stage"])
        cand_path = os.path.join(self.out_dir, "work", "candidates", f"{name}.parquet")
        os.makedirs(os.path.dirname(cand_path), exist_ok=True)
        pq.write_table(
            pa.Table.from_pandas(candidates, schema=candidate_schema(candidates.columns), preserve_index=False),
            cand_path + ".tmp",
        )
        os.replace(cand_path + ".tmp", cand_path)
        score_cols = [c for c in df.columns if c.startswith("score_")]
        removed_by: dict[str, int] = {}
        with atomic_open(os.path.join(self.out_dir, "removed", f"{name}.filters.jsonl")) as f:
            for row in df[~alive].to_dict("records"):
                score = row.get(f"score_{row['_stage']}")
                f.write(
                    json.dumps(
                        removed_record(
                            row,
                            row["_removed"],
                            row["_stage"],
                            score=None if score is None or score != score else float(score),
                        ),
                        ensure_ascii=False,
                    )
                    + "\n"
                )
                key = f"{row['_stage']}:{row['_removed']}"
                removed_by[key] = removed_by.get(key, 0) + 1
        quarantine = batch._metadata["quarantine"]
        with atomic_open(os.path.join(self.out_dir, "quarantine", f"{name}.jsonl")) as f:
            for q in quarantine:
                f.write(json.dumps(q, ensure_ascii=False) + "\n")
        scores = {
            c[len("score_") :]: histogram(c[len("score_") :], df[c].dropna().to_numpy(dtype=float)) for c in score_cols
        }
        stats = {
            "shard": shard,
            "fingerprint": self.fingerprint,
            "lines_in": batch._metadata["lines_in"],
            "quarantined": len(quarantine),
            "removed_by": removed_by,
            "candidates": int(alive.sum()),
        }
        if stats["lines_in"] != stats["quarantined"] + sum(removed_by.values()) + stats["candidates"]:
            raise RuntimeError(f"shard {name}: accounting identity broken: {stats}")
        write_json(os.path.join(self.out_dir, "work", "scores", f"{name}.json"), scores)
        write_json(os.path.join(self.out_dir, "work", "shards", f"{name}.json"), stats)  # last: marks done
        return FileGroupTask(dataset_name=name, data=[cand_path], _metadata={"stats": stats, "docs": stats["lines_in"]})


@dataclasses.dataclass
class ReadCandidates(ProcessingStage[FileGroupTask, DocumentBatch]):
    """A finished shard's candidates back as a DocumentBatch (for Curator's removal stage)."""

    out_dir: str
    name: str = "read_candidates"

    def process(self, task: FileGroupTask) -> DocumentBatch:
        shard = task.reader_config
        path = os.path.join(self.out_dir, "work", "candidates", f"{shard['name']}.parquet")
        df = pq.read_table(path).to_pandas()
        return DocumentBatch(
            dataset_name=shard["name"], data=df, _metadata={"shard": shard, "candidate_ids": df[DEDUP_ID].to_numpy()}
        )
