"""Fine-tuning through NeMo AutoModel: kollm writes its YAML recipe, `automodel` trains, kollm scores.

AutoModel 0.7 pins transformers 5.18, so it runs in its own environment (.venv-automodel, `make
env-automodel`), as a subprocess: on GPUs `automodel recipe.yaml --nproc-per-node N` (FSDP2 on NCCL),
on CPU the same recipe under torchrun with gloo and kollm.finetune.automodel_cpu's CUDA->CPU mapping.
Its LoRA/DoRA adapter comes back in HF-PEFT format; kollm merges, scores and saves it like its own.
"""

from __future__ import annotations

import glob
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time

from kollm.core.errors import KollmError
from kollm.data.tasks import Task
from kollm.finetune.config import FinetuneConfig


def methods_it_runs() -> tuple[str, ...]:
    """The methods whose registration says AutoModel's PeftConfig runs them (LoRA; DoRA through use_dora)."""
    from kollm.finetune.methods import METHODS

    return tuple(name for name, m in METHODS.items() if m.automodel is not None)


def _settings(method: str, part: str) -> dict:
    """The method's own AutoModel settings for one part of the recipe ("model", "peft")."""
    from kollm.finetune.methods import METHODS

    return dict((METHODS[method].automodel or {}).get(part, {}))


def python(configured: str = "") -> str:
    """The AutoModel environment's interpreter: finetune.automodel_python, else the repo's .venv-automodel."""
    from kollm.data.sources import repo_root

    path = configured or os.path.join(repo_root(), ".venv-automodel", "bin", "python")
    if not os.path.isfile(path):
        raise KollmError(
            f"finetune.backend=automodel needs NeMo AutoModel's environment: {path} is missing; "
            "create it with `make env-automodel` (or set finetune.automodel_python)"
        )
    return path


def check(s: FinetuneConfig) -> str:
    """The AutoModel interpreter, once the method and head are ones its recipe runs."""
    if s.method not in methods_it_runs() or s.head != "lm":
        raise KollmError(
            f"finetune.backend=automodel runs {' and '.join(methods_it_runs())} with the lm head; "
            f"got method={s.method} head={s.head} (use finetune.backend=hf)"
        )
    return python(s.automodel_python)


def recipe(base_dir: str, train_file: str, n_rows: int, s: FinetuneConfig, out: str, gpus: int) -> dict:
    """AutoModel's TrainFinetuneRecipeForNextTokenPrediction over a local prompt/completion JSONL."""
    steps = s.epochs * math.ceil(n_rows / s.batch_size)
    return {
        "recipe": "TrainFinetuneRecipeForNextTokenPrediction",
        "dist_env": {"backend": "nccl" if gpus else "gloo", "timeout_minutes": 10},
        "rng": {"_target_": "nemo_automodel.components.training.rng.StatefulRNG", "seed": s.seed, "ranked": True},
        # force_hf and use_dora: what the method's registration asks of AutoModel (DoRA needs the HF model class:
        # kollm/finetune/methods/dora.py says why)
        "model": {
            "_target_": "nemo_automodel.NeMoAutoModelForCausalLM.from_pretrained",
            "pretrained_model_name_or_path": os.path.abspath(base_dir),
            "torch_dtype": "float32",
            "force_hf": False,
            **_settings(s.method, "model"),
        },
        "distributed": {
            "_target_": "nemo_automodel.components.distributed.fsdp2.FSDP2Manager",
            "dp_size": max(1, gpus),
            "tp_size": 1,
            "pp_size": 1,
            "cp_size": 1,
        },
        "step_scheduler": {
            "global_batch_size": s.batch_size,
            "local_batch_size": s.batch_size // max(1, gpus),
            "max_steps": steps,
            "num_epochs": s.epochs,
            "val_every_steps": steps + 1,
            "ckpt_every_steps": steps,
        },
        "optimizer": {"_target_": "torch.optim.AdamW", "lr": s.lr, "weight_decay": 0.0},
        "checkpoint": {
            "enabled": True,
            "model_save_format": "safetensors",
            "checkpoint_dir": os.path.abspath(os.path.join(out, "automodel_checkpoints")),
            "save_consolidated": False,
        },
        "dataset": {
            "_target_": "nemo_automodel.components.datasets.llm.column_mapped_text_instruction_dataset."
            "ColumnMappedTextInstructionDataset",
            "path_or_dataset_id": os.path.abspath(train_file),
            "split": "train",
            "column_mapping": {"question": "prompt", "answer": "completion"},
            "answer_only_loss_mask": True,
            "use_hf_chat_template": True,
            "seq_length": s.max_len,
            "truncation": "longest_first",
        },
        "dataloader": {
            "_target_": "torchdata.stateful_dataloader.StatefulDataLoader",
            "collate_fn": "nemo_automodel.components.datasets.utils.default_collater",
            "shuffle": True,
        },
        "peft": {
            "_target_": "nemo_automodel.components._peft.lora.PeftConfig",
            "target_modules": ["*_proj"],
            "dim": s.lora_r,
            "alpha": s.lora_alpha,
            "dropout": s.lora_dropout,
            "use_dora": False,
            **_settings(s.method, "peft"),
            "use_triton": bool(gpus),
        },
        "loss_fn": {"_target_": "nemo_automodel.components.loss.masked_ce.MaskedCrossEntropy"},
    }


def command(py: str, recipe_file: str, gpus: int) -> list[str]:
    if gpus:
        return [os.path.join(os.path.dirname(py), "automodel"), recipe_file, "--nproc-per-node", str(gpus)]
    return [
        py,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "1",
        "-m",
        "kollm.finetune.automodel_cpu",
        recipe_file,
    ]


def train(base_dir: str, task: Task, train_rows: list[dict], s: FinetuneConfig, out: str) -> dict:
    """Run the recipe; return the adapter folder (HF-PEFT), the loss history, seconds and peak memory."""
    import torch
    import yaml

    py = check(s)
    out = os.path.abspath(out)  # the recipe runs with out as its working directory
    os.makedirs(out, exist_ok=True)
    train_file = os.path.join(out, "automodel_train.jsonl")
    with open(train_file, "w", encoding="utf-8") as f:
        for r in train_rows:
            f.write(
                json.dumps({"prompt": task.prompt(r), "completion": task.labels[r["label"]]}, ensure_ascii=False) + "\n"
            )
    gpus = torch.cuda.device_count()
    recipe_file = os.path.join(out, "automodel.yaml")
    with open(recipe_file, "w") as f:
        yaml.safe_dump(recipe(base_dir, train_file, len(train_rows), s, out, gpus), f, sort_keys=False)
    log_file = os.path.join(out, "automodel.log")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("PYTHONPATH", None)  # the AutoModel environment imports its own transformers, not ours
    t0 = time.perf_counter()
    with open(log_file, "w") as log:
        proc = subprocess.run(command(py, recipe_file, gpus), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=out)
    train_s = time.perf_counter() - t0
    if proc.returncode:
        with open(log_file) as f:
            tail = f.read()[-3000:]
        sys.stderr.write(tail)
        raise RuntimeError(f"NeMo AutoModel exited with {proc.returncode}; its log: {log_file}")
    ckpts = sorted(
        glob.glob(os.path.join(out, "automodel_checkpoints", "epoch_*_step_*")), key=lambda p: int(p.rsplit("_", 1)[1])
    )
    adapter = os.path.join(out, "adapter")
    shutil.rmtree(adapter, ignore_errors=True)
    os.makedirs(adapter)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(os.path.join(ckpts[-1], "model", name), adapter)
    with open(os.path.join(out, "automodel_checkpoints", "training.jsonl")) as f:
        history = [{"step": r["step"] + 1, "loss": round(r["loss"], 4)} for r in map(json.loads, f)]
    # the largest child process so far: AutoModel's trainer (ru_maxrss is in KiB on Linux)
    peak_mb = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return {
        "adapter_dir": adapter,
        "history": history,
        "train_s": train_s,
        "peak_mem_mb": peak_mb,
        "log": log_file,
        "recipe": recipe_file,
    }
