"""Fuzzy dedup on GPUs with Curator's own workflow, feeding the same removal contract.

When cuDF is importable (an NGC Curator container on a GPU node) and
`curate.fuzzy_backend` is gpu or auto, phase 2 hands the shard candidates to Curator's
`FuzzyDeduplicationWorkflow` (MinHash + LSH + connected components on GPUs) instead of
kollm's CPU MinHash. It reads the canonical Korean key (`_key`: no spaces/punctuation,
runs cut) with the same shingle size, bands and rows as the CPU path. Curator numbers
documents with its own id generator, one range per input file group; we give it one
file per group, so its id `start + row` maps back to our `_curator_dedup_id` at that row.
Exact duplicates are still found on CPU (their hashes are already computed).
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from kollm.config import CurateConfig


def cudf_available() -> bool:
    try:
        import cudf  # noqa: F401
    except Exception:  # ImportError, or a CUDA runtime error on a machine without GPUs
        return False
    return True


def use_gpu(cfg: CurateConfig) -> bool:
    if cfg.fuzzy_backend == "gpu" and not cudf_available():
        raise RuntimeError("curate.fuzzy_backend=gpu needs cuDF (an NGC NeMo Curator container on a GPU node)")
    return cfg.fuzzy_backend == "gpu" or (cfg.fuzzy_backend == "auto" and cudf_available())


def fuzzy_workflow_kwargs(cfg: CurateConfig, cache_dir: str, output_dir: str) -> dict:
    """Arguments of Curator's GPU fuzzy-dedup workflow, set like kollm's CPU MinHash."""
    return dict(
        cache_path=cache_dir,
        output_path=output_dir,
        input_filetype="parquet",
        text_field="_key",
        char_ngrams=cfg.minhash_ngram,
        num_bands=cfg.minhash_bands,
        minhashes_per_band=cfg.minhash_rows,
        use_64_bit_hash=False,
        seed=42,
        bands_per_iteration=min(5, cfg.minhash_bands),
    )


def fuzzy_workflow(cfg: CurateConfig, cache_dir: str, output_dir: str):
    """Curator's FuzzyDeduplicationWorkflow (importing it needs cuDF: GPU hosts only)."""
    from nemo_curator.stages.deduplication.fuzzy.workflow import FuzzyDeduplicationWorkflow

    return FuzzyDeduplicationWorkflow(**fuzzy_workflow_kwargs(cfg, cache_dir, output_dir))


def one_file_tasks(candidate_files: list[str]) -> list:
    from nemo_curator.tasks import FileGroupTask

    return [FileGroupTask(dataset_name=os.path.basename(p), data=[p], reader_config={}) for p in candidate_files]


def translate_ids(id_generator_json: str, removal_ids: np.ndarray, candidate_files: list[str]) -> np.ndarray:
    """Curator workflow ids -> our `_curator_dedup_id`s (one registry range per candidate file)."""
    from nemo_curator.stages.deduplication.id_generator import IdGeneratorBase

    registry = IdGeneratorBase.from_disk(id_generator_json)
    starts, ours = [], []
    for path in candidate_files:
        lo, hi = registry.get_batch_range([path], None)
        ids = pq.read_table(path, columns=["_curator_dedup_id"]).column(0).to_numpy()
        if hi - lo + 1 != len(ids):
            raise RuntimeError(f"{path}: Curator numbered {hi - lo + 1} rows, the file has {len(ids)}")
        starts.append(lo)
        ours.append(ids)
    order = np.argsort(starts)
    starts_sorted = np.array(starts)[order]
    out = np.empty(len(removal_ids), dtype=np.int64)
    for k, rid in enumerate(removal_ids):
        i = order[np.searchsorted(starts_sorted, rid, side="right") - 1]
        out[k] = ours[i][rid - starts[i]]
    return out


def run_gpu_fuzzy(cfg: CurateConfig, out_dir: str) -> np.ndarray:
    """Our ids of near-duplicates to remove, found by Curator's GPU workflow."""
    files = sorted(glob.glob(os.path.join(out_dir, "work", "candidates", "*.parquet")))
    cache, output = os.path.join(out_dir, "work", "gpu_cache"), os.path.join(out_dir, "work", "gpu_dedup")
    fuzzy_workflow(cfg, cache, output).run(initial_tasks=one_file_tasks(files))
    parts = glob.glob(os.path.join(output, "FuzzyDuplicateIds", "*.parquet"))
    removal = pd.concat([pd.read_parquet(p) for p in parts]) if parts else pd.DataFrame({"_curator_dedup_id": []})
    return translate_ids(
        os.path.join(output, "fuzzy_id_generator.json"), removal["_curator_dedup_id"].to_numpy(dtype=np.int64), files
    )
