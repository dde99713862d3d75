"""Curate with NeMo Curator (curator_pipelines/): Korean filters, PII, language id, toxicity, dedup.

The raw corpus and the held-out reviews go through one run, so held-out reviews that duplicate a
training document are removed (the training copy comes first and is the one kept).

Outputs: corpus / heldout (kept documents, JSONL, for the tokenizer and pretraining),
toxicity_model (.npz, + its dev metrics in the manifest), curation_dir (removed/, quarantine/,
summary.md, datacard.md, histograms). Killed part-way, a rerun resumes: finished shards are kept.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os

from kollm.config import PipelineConfig
from kollm.core import atomic_open, read_json, read_jsonl, sha256_file, write_json
from kollm.curation import toxicity
from stages.base import Outputs, inputs
from stages.data import DataOutputs


@dataclasses.dataclass(frozen=True)
class CurateOutputs(Outputs):
    corpus: str  # curated pretraining documents (JSONL)
    heldout: str  # curated held-out reviews, for perplexity and tokenizer measures
    toxicity_model: str  # the character n-gram toxicity classifier the filters used
    curation_dir: str  # NeMo Curator's work folder (shards, what each filter removed)


RAW = {"corpus": "corpus_raw", "heldout": "heldout_raw"}  # output name -> the data stage's input


def on_ray(cfg: PipelineConfig) -> bool:
    """Curation on Ray (`curate.executor=ray`) spans nodes: node 0 the Ray head, the others workers."""
    return cfg.curate.executor == "ray"


def train_toxicity(train: str, dev: str, out: str) -> tuple[str, dict]:
    """The toxicity model for these labelled files: trained once, reused while their content is unchanged
    (so a resumed curation sees the same model file and keeps its finished shards)."""
    path, record = os.path.join(out, "toxicity.npz"), os.path.join(out, "toxicity.json")
    trained_on = {"train": sha256_file(train), "dev": sha256_file(dev)}
    if os.path.exists(path) and os.path.exists(record):
        known = read_json(record)
        if known.get("trained_on") == trained_on and known.get("model") == sha256_file(path):
            return path, known["metrics"]
    model, metrics = toxicity.train(read_jsonl(train), read_jsonl(dev))
    model.save(path)
    write_json(record, {"trained_on": trained_on, "model": sha256_file(path), "metrics": metrics})
    return path, metrics


def _kept_rows(path: str):
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        yield from pq.read_table(path).to_pylist()
    else:
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def run(cfg: PipelineConfig, out: str) -> dict:
    from curator_pipelines.korean_pipeline import counts_by_input, curate
    from curator_pipelines.scheduling import join_slurm_ray_cluster

    if cfg.curate.executor == "ray":
        join_slurm_ray_cluster()  # multi-node Slurm: only node 0 (the Ray head) goes on
    data = inputs(cfg, DataOutputs)
    tox_path, tox_metrics = train_toxicity(data.hate_train, data.hate_dev, out)
    raw = {name: getattr(data, source) for name, source in RAW.items()}
    work = os.path.join(out, "curation")
    summary = curate(list(raw.values()), work, cfg.curate, tox_path)
    counts = counts_by_input(work)
    outputs = {"toxicity_model": os.path.abspath(tox_path), "curation_dir": os.path.abspath(work)}
    for name, path in raw.items():
        outputs[name] = os.path.abspath(os.path.join(out, f"{name}.jsonl"))
        with atomic_open(outputs[name]) as f:
            for shard in sorted(glob.glob(os.path.join(work, "kept", f"*-{os.path.basename(path).split('.')[0]}-*"))):
                for doc in _kept_rows(shard):
                    f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return {
        "outputs": CurateOutputs(**outputs),
        "counts": {name: counts[path] for name, path in raw.items()},
        "metrics": {"toxicity": tox_metrics, "timings": summary["timings"]},
        "stages": summary["stages"],
    }
