"""Stage 2, curate: clean the raw corpus and the held-out text; account for every document."""

from __future__ import annotations

import collections
import json
import os

from tqdm import tqdm

from kollm.config import PipelineConfig
from kollm.curate import Curator
from kollm.errors import KollmError
from kollm.io import atomic_open, read_jsonl
from kollm.stages.runner import stage_dir


def curate_file(src: str, kept_path: str, removed_path: str, curator: Curator) -> dict:
    reasons: collections.Counter = collections.Counter()
    n_in = n_kept = 0
    with atomic_open(kept_path) as kept, atomic_open(removed_path) as removed:
        for doc in tqdm(read_jsonl(src, required=("id", "text")), desc=os.path.basename(src), unit="doc",
                        mininterval=2):
            n_in += 1
            doc, reason = curator(doc)
            if reason is None:
                kept.write(json.dumps(doc, ensure_ascii=False) + "\n")
                n_kept += 1
            else:
                removed.write(json.dumps({**doc, "reason": reason}, ensure_ascii=False) + "\n")
                reasons[reason] += 1
    n_removed = sum(reasons.values())
    if n_kept + n_removed != n_in:  # the accounting identity: nothing silently lost
        raise KollmError(f"curation lost documents: {n_in} in, {n_kept} kept, {n_removed} removed")
    return {"in": n_in, "kept": n_kept, "removed": n_removed, "removed_by_reason": dict(reasons)}


def run(cfg: PipelineConfig, out: str) -> dict:
    data = stage_dir(cfg, "data")
    curator = Curator(cfg.curate)
    corpus = curate_file(os.path.join(data, "corpus_raw.jsonl"), os.path.join(out, "corpus.jsonl"),
                         os.path.join(out, "corpus_removed.jsonl"), curator)
    # Same curator, so held-out reviews that duplicate a training document are removed too:
    # perplexity must be measured on text the model has not seen.
    heldout = curate_file(os.path.join(data, "heldout_raw.jsonl"), os.path.join(out, "heldout.jsonl"),
                          os.path.join(out, "heldout_removed.jsonl"), curator)
    return {"counts": {"corpus": corpus, "heldout": heldout}}
