"""Fine-tune the pretrained LM on each of finetune.tasks (NSMC, KLUE-NLI, hate speech) with finetune.method.

Methods: full, lora, dora, waveft, prompt_tuning, qlora (HF PEFT); heads: lm (the LM answers a label
word) or cls (a classification head); backend hf (kollm's loop) or automodel (NeMo AutoModel, LoRA/DoRA,
in .venv-automodel). Each task's adapter (HF-PEFT format) and merged model go to finetune/<task>/;
results.json holds one method-table row per task, scored on validation rows (the test splits are
the evaluate stage's).
"""

from __future__ import annotations

import dataclasses
import os

from kollm.config import PipelineConfig
from kollm.core import write_json
from stages.base import Outputs, inputs
from stages.data import DataOutputs
from stages.pretrain import PretrainOutputs


@dataclasses.dataclass(frozen=True)
class FinetuneOutputs(Outputs):
    results: str  # results.json: the method-table row of each task (its model folder, scores on validation rows)


def run(cfg: PipelineConfig, out: str) -> dict:
    from kollm.data import by_name, load_split
    from kollm.finetune import finetune_task

    ft = cfg.finetune
    base = inputs(cfg, PretrainOutputs).model_dir
    data = inputs(cfg, DataOutputs).paths()
    rows = []
    for name in ft.tasks:
        task = by_name(name)
        train_rows = load_split(task, data, "train", ft.seed, ft.examples_per_class)
        val_rows = load_split(task, data, "val", ft.seed, 250 if task.name == "nsmc" else 0)
        row = finetune_task(base, task, train_rows, val_rows, ft, os.path.join(out, name))
        print(
            f"[finetune] {name}: {task.metric} {row[task.metric]:.4f} on {row['test_examples']} validation rows, "
            f"{row['trainable_pct']:.2f} % of parameters trained, {row['train_s']:.0f} s"
        )
        rows.append(row)
    results = os.path.abspath(os.path.join(out, "results.json"))
    write_json(results, {"method": ft.method, "head": ft.head, "backend": ft.backend, "tasks": rows})
    return {
        "outputs": FinetuneOutputs(results=results),
        "counts": {f"{r['task']}_train_examples": r["train_examples"] for r in rows},
        "metrics": {f"{r['task']}_val_{by_name(r['task']).metric}": r[by_name(r["task"]).metric] for r in rows},
    }
