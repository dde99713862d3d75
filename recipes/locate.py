"""Which folder of a pipeline run a path given to `kollm evaluate` means.

A run's stage folder stands for what its manifest declares (`runs/tiny/align` -> its last policy), never a
hard-coded sub-path; a path in a run that is not there is one KollmError naming the stage or setting that
makes it (`finetune/nsmc/adapter` -> `finetune.method=lora finetune.head=lm`).
"""

from __future__ import annotations

import json
import os
import shlex

from kollm.core.errors import KollmError
from stages.base import load_manifest


def _in_run(path: str) -> tuple[str, str, list[str]] | None:
    """(run folder, stage name, the parts of `path` below the stage folder) when `path` is a pipeline run's
    stage folder or lies under one (`runs/tiny/align`, `runs/tiny/finetune/nsmc/adapter`), whether or not it
    exists; None for any other path. A run folder holds a stage's manifest or the run's config.json."""
    from stages import NAMES

    def is_run(folder: str) -> bool:
        if any(os.path.isfile(os.path.join(folder, s, "manifest.json")) for s in NAMES):
            return True
        try:
            with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
                return {"preset", "run"} <= set(json.load(f))
        except (OSError, ValueError, TypeError):
            return False

    parts = os.path.normpath(path).split(os.sep)
    for i in range(len(parts) - 1, 0, -1):
        run_dir = os.sep.join(parts[:i]) or os.sep
        if parts[i] in NAMES and os.path.isdir(run_dir) and is_run(run_dir):
            return run_dir, parts[i], parts[i + 1 :]
    return None


def _stage_command(run_dir: str, stage: str, *settings: str) -> str:
    """The command that (re)makes `stage` of the run in `run_dir`, with `settings`."""
    name, root = os.path.basename(run_dir), os.path.dirname(run_dir) or "."
    try:
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
            preset = json.load(f).get("preset") or name
    except (OSError, ValueError):
        from recipes.presets import PRESETS

        preset = name if name in PRESETS else "PRESET"
    where = [] if name == preset else [f"run.name={name}"]
    if os.path.normpath(root) != "runs":
        where.append(f"run.root={root}")
    return "`" + " ".join(["kollm run", stage, *map(shlex.quote, [f"preset={preset}", *where, *settings])]) + "`"


def _finetuned(run_dir: str, manifest: dict) -> tuple[dict, dict[str, dict]]:
    """The finetune stage's results (method, head) and its rows by task, from the file its manifest declares."""
    from stages.finetune import FinetuneOutputs

    with open(FinetuneOutputs.from_manifest(manifest, "finetune").results, encoding="utf-8") as f:
        results = json.load(f)
    return results, {row["task"]: row for row in results["tasks"]}


def _from_finetune(path: str, run_dir: str, manifest: dict, task: str, kind: str) -> str:
    """The folder of `task`'s fine-tuned model (kind "model") or adapter (kind "adapter") the finetune stage
    recorded, or a KollmError naming the setting that makes it."""
    results, rows = _finetuned(run_dir, manifest)
    if task not in rows:
        tasks = "finetune.tasks=" + json.dumps([*rows, task], separators=(",", ":"))
        raise KollmError(
            f"{path}: this run's finetune stage did not fine-tune {task} (finetune.tasks: "
            f"{', '.join(rows)}); it is made by {_stage_command(run_dir, 'finetune', tasks)}"
        )
    row = rows[task]
    method, head = results["method"], results["head"]
    if kind == "adapter" and not row.get("adapter_dir"):
        raise KollmError(
            f"{path}: no adapter: this run's finetune stage trained every weight "
            f"(finetune.method={method}, finetune.head={head}); an adapter evaluate applies is made by "
            f"{_stage_command(run_dir, 'finetune', 'finetune.method=lora', 'finetune.head=lm')}"
        )
    if kind == "model" and not row.get("model_dir"):
        raise KollmError(
            f"{path}: no merged model: finetune.method={method} saves only an adapter; pass the pretrain "
            f"stage's folder with --adapter {row['adapter_dir']}"
        )
    return row[f"{kind}_dir"]


def evaluation_input(path: str, kind: str, task_names: list[str]) -> str:
    """The folder `kollm evaluate` reads for `path` (kind "model" or "adapter"). A run's stage folder stands for
    what its manifest declares (align: its last policy; the finetune stage, for one task: that task's model or
    adapter); a path in a run that is not there is one error line saying which stage or setting makes it. Any
    other path is taken as given."""
    found = _in_run(path)
    if found is None:
        from stages import NAMES

        parts = os.path.normpath(path).split(os.sep)
        at = next((i for i in range(len(parts) - 1, 0, -1) if parts[i] in NAMES), None)
        run_dir = os.sep.join(parts[:at]) if at else ""
        if at and run_dir and not os.path.exists(path) and not os.path.exists(run_dir):
            raise KollmError(
                f"{path}: no such folder: no pipeline has run in {run_dir}; its {parts[at]} stage "
                f"is made by {_stage_command(run_dir, 'pipeline')}"
            )
        return path
    run_dir, stage, rest = found
    stage_folder = os.path.join(run_dir, stage)
    manifest = load_manifest(run_dir, stage)
    if manifest is None:
        raise KollmError(
            f"{path}: the {stage} stage has not completed in {run_dir}; it is made by {_stage_command(run_dir, stage)}"
        )
    outputs = manifest.get("outputs", {})
    if not rest:  # the stage folder: what its manifest declares
        if kind == "model" and outputs.get("model_dir"):
            return outputs["model_dir"]
        if stage == "finetune":
            if len(task_names) != 1:
                raise KollmError(
                    f"{path}: the finetune stage holds one {kind} per task: name one with --tasks, "
                    f"or pass its folder ({stage_folder}/TASK/{kind})"
                )
            return _from_finetune(path, run_dir, manifest, task_names[0], kind)
        raise KollmError(
            f"{path}: the {stage} stage's manifest declares no {kind} (its outputs: "
            f"{', '.join(outputs)}); pass the pretrain, align or export stage's folder, or a HF model folder"
        )
    if os.path.exists(path):
        return path  # a folder inside a stage's (align/sft/model, finetune/nsmc/model): as given
    if stage == "finetune" and rest[1:] in (["model"], ["adapter"]):
        return _from_finetune(path, run_dir, manifest, rest[0], rest[1])
    if outputs.get("model_dir"):
        raise KollmError(
            f"{path}: no such folder; the {stage} stage's manifest declares its model at "
            f"{outputs['model_dir']}: pass that, or the stage folder {stage_folder}"
        )
    raise KollmError(
        f"{path}: no such folder in the {stage} stage's outputs; pass the pretrain, align or export "
        "stage's folder, or a HF model folder"
    )


def check_causal_lm(model_dir: str, adapter: str | None) -> None:
    """lm-eval scores a causal LM's answer words: a classification head (finetune.head=cls) has none."""
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        architectures = json.load(f).get("architectures") or []
    heads = [a for a in architectures if a.endswith("ForSequenceClassification")]
    if heads:
        raise KollmError(
            f"{model_dir}: a classification model ({heads[0]}, finetune.head=cls), which lm-eval cannot "
            "score; evaluate scores causal LMs: the pretrain or align stage's model, or one fine-tuned "
            "with finetune.head=lm (the evaluate stage's report scores the classifiers)"
        )
    if adapter:
        with open(os.path.join(adapter, "adapter_config.json"), encoding="utf-8") as f:
            task_type = json.load(f).get("task_type")
        if task_type == "SEQ_CLS":
            raise KollmError(
                f"{adapter}: an adapter for a classification head (PEFT task_type SEQ_CLS, "
                "finetune.head=cls), which lm-eval cannot score; evaluate applies adapters made with "
                "finetune.head=lm"
            )
