"""Export the aligned model as a HF model folder with a model card whose numbers come from this run's report.

The folder is what `AutoModelForCausalLM.from_pretrained(dir)` and TensorRT-LLM's LLM API load
(kollm.export). README.md is the model card: data, training, evaluation (from the evaluate
stage's report.json, never typed), limits, licence, and a Korean usage example. `kollm export --push
REPO --dry-run` lists what would be uploaded to the Hugging Face Hub.
"""

from __future__ import annotations

import dataclasses
import os

from kollm.config import PipelineConfig
from kollm.core import read_json
from kollm.export import model_card, write_folder
from stages.base import Outputs, the, upstream


@dataclasses.dataclass(frozen=True)
class ExportOutputs(Outputs):
    model_dir: str  # the HF model folder to ship, with its model card (README.md)


def run(cfg: PipelineConfig, out: str) -> dict:
    model_dir = the(cfg, "model")
    metrics = upstream(cfg, "evaluate").get("metrics", {})  # the card's numbers: the manifests' figures
    pretrained = upstream(cfg, "pretrain")
    pretrain_metrics = {**pretrained.get("counts", {}), **pretrained.get("metrics", {})}
    config = read_json(os.path.join(model_dir, "config.json"))
    card = model_card(
        cfg.export,
        cfg.preset,
        cfg.align.steps,
        f"{os.path.relpath(cfg.run_dir)}/evaluate/report.md",
        config,
        metrics,
        pretrain_metrics,
    )
    folder = os.path.join(out, "model")
    files = write_folder(model_dir, folder, card)
    return {
        "outputs": ExportOutputs(model_dir=os.path.abspath(folder)),
        "files": files,
        "counts": {"files": len(files)},
    }
