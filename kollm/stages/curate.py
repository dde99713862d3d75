"""Stage 2, curate: the NeMo Curator Korean pipeline (curator_pipelines/) over the raw corpus
and the held-out reviews, in one run so held-out reviews that duplicate a training
document are removed (the training copy comes first and is the one kept).

Outputs: corpus.jsonl / heldout.jsonl (kept documents, for the tokenizer and pretraining),
toxicity.npz (+ its dev metrics), and curation/ (removed/, quarantine/, summary.md,
datacard.md, histograms).
"""

from __future__ import annotations

import glob
import json
import os

from kollm.config import PipelineConfig
from kollm.curation import toxicity
from kollm.io import atomic_open, read_jsonl
from kollm.stages.runner import stage_dir

INPUTS = ("corpus_raw", "heldout_raw")


def train_toxicity(data: str, out: str) -> tuple[str, dict]:
    model, metrics = toxicity.train(read_jsonl(os.path.join(data, "hate_train.jsonl")),
                                    read_jsonl(os.path.join(data, "hate_dev.jsonl")))
    path = os.path.join(out, "toxicity.npz")
    model.save(path)
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
    from curator_pipelines.executors import join_slurm_ray_cluster
    from curator_pipelines.korean import counts_by_input, curate

    if cfg.curate.executor == "ray":
        join_slurm_ray_cluster()  # multi-node Slurm: only node 0 (the Ray head) goes on
    data = stage_dir(cfg, "data")
    tox_path, tox_metrics = train_toxicity(data, out)
    inputs = [os.path.join(data, f"{name}.jsonl") for name in INPUTS]
    work = os.path.join(out, "curation")
    summary = curate(inputs, work, cfg.curate, tox_path)
    counts = counts_by_input(work)
    for name, path in zip(("corpus", "heldout"), inputs):
        with atomic_open(os.path.join(out, f"{name}.jsonl")) as f:
            for shard in sorted(glob.glob(os.path.join(work, "kept", f"*-{os.path.basename(path).split('.')[0]}-*"))):
                for doc in _kept_rows(shard):
                    f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return {"counts": {"corpus": counts[inputs[0]], "heldout": counts[inputs[1]]},
            "metrics": {"toxicity": tox_metrics, "timings": summary["timings"]},
            "stages": summary["stages"]}
