"""Korean evaluation on lm-evaluation-harness: kollm's task YAMLs (kollm/evaluate/lm_eval_tasks/) over local rows.

    folder = harness.write_rows({"nsmc": rows, ...}, "eval_data/")
    scores = harness.evaluate("runs/tiny/pretrain/hf", ["nsmc", "klue_sts"], folder, adapter=None)
    print(harness.command("runs/tiny/pretrain/hf", ["nsmc"], folder))   # the same run with `lm_eval`

lm-eval's own Korean tasks (kobest_*, kmmlu*, haerae*) read hub datasets, which these machines cannot
reach; `evaluate(..., extra_tasks=[...])` runs them where the hub (or its cache) is available.
"""

from __future__ import annotations

import json
import os
import shlex
from typing import Any

from kollm.core.errors import KollmError

TASKS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lm_eval_tasks")
HARNESS_TASKS = ("nsmc", "klue_nli", "hate", "klue_sts")


def write_rows(rows_by_task: dict[str, list[dict]], folder: str) -> str:
    """The rows lm-eval reads: `<task>.jsonl` in `folder`, each row tagged with its task."""
    os.makedirs(folder, exist_ok=True)
    for name, rows in rows_by_task.items():
        with open(os.path.join(folder, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({**r, "task": name}, ensure_ascii=False) + "\n")
    return os.path.abspath(folder)


def rows_for(task_names: list[str], data_file: str = "", data_dir: str = "", nsmc_per_class: int = 1000) -> dict:
    """Test rows for `kollm evaluate`: one task's rows from a user's JSONL file, or each task's test
    split built from the Korean data the way the data stage builds it (NSMC's test movies, the KLUE-NLI
    test part, hate-speech dev, KLUE-STS dev)."""
    from kollm.core.io import read_jsonl
    from kollm.data import sources, tasks
    from kollm.data.split import movie_split, nli_split

    for name in task_names:
        if name not in HARNESS_TASKS:
            raise KollmError(f"unknown task {name!r}; choose from {', '.join(HARNESS_TASKS)}")
    if data_file:
        if len(task_names) != 1:
            raise KollmError(
                f"--data holds one task's rows: name that task with --tasks (one of {', '.join(HARNESS_TASKS)})"
            )
        if not os.path.isfile(data_file):
            raise KollmError(f"{data_file}: no such file")
        rows = tasks.rows_from(tasks.TASKS[task_names[0]], read_jsonl(data_file), balance=False)  # every row
        if not rows:
            raise KollmError(f"{data_file}: no rows for task {task_names[0]} (an empty file, or no labelled rows)")
        return {task_names[0]: rows}
    d = sources.resolve_data_dir(data_dir)
    readers = {
        "nsmc": lambda: tasks.rows_from(
            tasks.NSMC,
            (r for r in sources.iter_nsmc(d) if movie_split(int(r["movie_id"]), 0.05, 0.05) == "test"),
            0,
            nsmc_per_class,
        ),
        "klue_nli": lambda: tasks.rows_from(
            tasks.KLUE_NLI, (r for r in sources.iter_klue_nli(d) if nli_split(r["premise"]) == "test")
        ),
        "hate": lambda: tasks.rows_from(tasks.HATE, sources.iter_hate_labeled(d, "dev")),
        "klue_sts": lambda: tasks.rows_from(tasks.KLUE_STS, sources.iter_klue_sts(d)),
    }
    return {name: readers[name]() for name in task_names}


def check_model_dir(model_dir: str) -> None:
    if not os.path.isdir(model_dir):
        raise KollmError(f"{model_dir}: no such model folder")
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise KollmError(f"{model_dir}: not a HF model folder (no config.json)")
    if not any(f.endswith((".safetensors", ".bin")) for f in os.listdir(model_dir)):
        raise KollmError(f"{model_dir}: the folder has a config.json but no weights (*.safetensors)")


def check_adapter_dir(adapter_dir: str) -> None:
    if not os.path.isfile(os.path.join(adapter_dir, "adapter_config.json")):
        raise KollmError(f"{adapter_dir}: not a PEFT adapter folder (no adapter_config.json)")


def _model_args(model_dir: str, adapter: str | None) -> str:
    return f"pretrained={os.path.abspath(model_dir)},dtype=float32" + (
        f",peft={os.path.abspath(adapter)}" if adapter else ""
    )


def evaluate(
    model_dir: str,
    task_names: list[str],
    folder: str,
    adapter: str | None = None,
    batch_size: int = 32,
    limit: int | None = None,
    extra_tasks: list[str] | None = None,
    per_row: bool = False,
) -> dict[str, dict]:
    """{task: {metric: value}} from lm-eval, on CPU or the first GPU; no bootstrap stderr (it costs
    minutes and the report does not show it). With `per_row`, each task also holds `loglikelihoods`:
    per row, in file order, lm-eval's summed log-probability of each answer choice."""
    import lm_eval
    import torch
    from lm_eval.tasks import TaskManager

    from kollm.models import prepare

    prepare()  # any folder may hold any architecture: an RWKV one loads as kollm's batch-correct model

    check_model_dir(model_dir)
    if adapter:
        check_adapter_dir(adapter)
    names = [f"kollm_{t}" for t in task_names] + list(extra_tasks or [])
    # indexing lm-eval's own task YAMLs takes ~12 s on 2 cores: only when one of them is asked for
    manager = TaskManager(include_path=TASKS_DIR, include_defaults=bool(extra_tasks), metadata={"kollm_data": folder})
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=_model_args(model_dir, adapter),
        tasks=names,
        task_manager=manager,
        apply_chat_template=True,
        bootstrap_iters=0,
        batch_size=batch_size,
        device="cuda" if torch.cuda.is_available() else "cpu",
        limit=limit,
        log_samples=per_row,
    )
    scores: dict[str, dict[str, Any]] = {}
    for name, values in out["results"].items():
        key = name.removeprefix("kollm_")
        scores[key] = {
            m.split(",")[0]: v
            for m, v in values.items()
            if "," in m and not m.split(",")[0].endswith("_stderr") and isinstance(v, (int, float))
        }
        if per_row:
            docs = sorted(out["samples"][name], key=lambda d: d["doc_id"])
            scores[key]["loglikelihoods"] = [[float(r[0]) for r in d["filtered_resps"]] for d in docs]
    return scores


def command(
    model_dir: str, task_names: list[str], folder: str, adapter: str | None = None, limit: int | None = None
) -> str:
    """The `lm_eval` command line that computes the same scores."""
    return " ".join(
        [
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            shlex.quote(_model_args(model_dir, adapter)),
            "--include_path",
            shlex.quote(TASKS_DIR),
            "--tasks",
            ",".join(f"kollm_{t}" for t in task_names),
            "--apply_chat_template",
            "--device",
            "cpu",
            "--batch_size",
            "32",
            "--metadata",
            shlex.quote(json.dumps({"kollm_data": folder})),
        ]
        + (["--limit", str(limit)] if limit else [])
    )
