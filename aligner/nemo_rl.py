"""NeMo-RL (the GPU path): the align stage's four steps as NeMo-RL v0.7 configs, on the same data.

NeMo-RL needs Python 3.13 and transformers < 5.9, so it runs in its container
(`nvcr.io/nvidia/nemo-rl:v0.7.0`, repository at /opt/nemo-rl), never in kollm's environment. Each
config written here inherits the example NeMo-RL ships for that step (`defaults:` an absolute path in
the container, which NeMo-RL's loader resolves) and overrides everything that must be this run's:

- every model and tokenizer name: the run's HF folders, never a hub id (`HUB_KEYS` lists them per
  step; the tests check each one is a local path);
- the data: the align stage's own JSONL, converted to NeMo-RL's formats (ResponseDataset
  `messages`, BinaryPreferenceDataset `{"prompt","chosen","rejected"}`). `data.train.dataset_name`
  is set explicitly: `data.default` only fills keys a dataset lacks, so a config inheriting
  dpo.yaml would otherwise keep HelpSteer3 (a hub download); and `split: train` on every local file
  (a JSONL loads as one split named train; the inherited `validation.split: validation` would fail);
- the hyper-parameters, mapped from `align.*` (`dpo.reference_policy_kl_penalty` = align.dpo_beta, ...);
- checkpoints and logs under this folder.

The steps chain through HF folders: NeMo-RL saves torch DCP checkpoints, and `run_all.sh` converts
each step's last one (examples/converters/convert_dcp_to_hf.py) into `hf/<step>`, which the next
config names as its model. GRPO scores answers with the reward model through NeMo-RL's
`reward_model` environment (grpo_rm_1B.yaml); kollm's classifier rewards are TRL-only (NeMo-RL takes
custom rewards as Ray-actor environments).
"""

from __future__ import annotations

import math
import os
import shlex
import typing

from kollm.config import AlignStep, PipelineConfig
from kollm.core.io import read_jsonl, write_jsonl

CONTAINER = "nvcr.io/nvidia/nemo-rl:v0.7.0"
NEMO_RL_DIR = "/opt/nemo-rl"  # the NeMo-RL checkout inside CONTAINER (its Dockerfile's WORKDIR)
STEPS = typing.get_args(AlignStep)
SCRIPTS = {
    "sft": "examples/run_sft.py",
    "dpo": "examples/run_dpo.py",
    "reward": "examples/run_rm.py",
    "grpo": "examples/run_grpo.py",
}
UPSTREAM = {"sft": "sft.yaml", "dpo": "dpo.yaml", "reward": "rm.yaml", "grpo": "grpo_rm_1B.yaml"}
# the keys of each upstream config that name a hub model or dataset: every one is overridden here
HUB_KEYS = {
    "sft": ("policy.model_name", "policy.tokenizer.name", "data.train.dataset_name"),
    "dpo": ("policy.model_name", "policy.tokenizer.name", "data.train.dataset_name", "data.validation.dataset_name"),
    "reward": ("policy.model_name", "policy.tokenizer.name", "data.train.dataset_name", "data.validation.dataset_name"),
    "grpo": (
        "policy.model_name",
        "policy.tokenizer.name",
        "data.train.dataset_name",
        "env.reward_model.model_name",
        "env.reward_model.tokenizer.name",
    ),
}
DATA_FILES = {
    "sft": "sft_messages.jsonl",
    "pairs": "pairs_train.jsonl",
    "eval_pairs": "pairs_eval.jsonl",
    "rl_prompts": "rl_prompts.jsonl",
}


def _text(messages: list[dict]) -> str:
    return messages[0]["content"]


def write_data(files: dict[str, str], out: str) -> dict[str, str]:
    """The align stage's JSONL in NeMo-RL's formats: SFT as `messages`, pairs as prompt/chosen/rejected
    strings (BinaryPreferenceDataset puts the prompt in a user turn and the answers in assistant
    turns), GRPO prompts as ResponseDataset input/output (output: the right label word of a sentiment
    question, empty for the other prompts)."""
    data = os.path.join(out, "data")
    paths = {k: os.path.join(data, v) for k, v in DATA_FILES.items()}
    write_jsonl(paths["sft"], ({"messages": r["prompt"] + r["completion"]} for r in read_jsonl(files["sft"])))
    for name in ("pairs", "eval_pairs"):
        write_jsonl(
            paths[name],
            (
                {"prompt": _text(r["prompt"]), "chosen": _text(r["chosen"]), "rejected": _text(r["rejected"])}
                for r in read_jsonl(files[name])
            ),
        )
    write_jsonl(
        paths["rl_prompts"],
        ({"input": _text(r["prompt"]), "output": r.get("answer", "")} for r in read_jsonl(files["rl_prompts"])),
    )
    return {k: os.path.abspath(v) for k, v in paths.items()}


def _steps(n: int, batch: int, epochs: int = 1) -> int:
    return max(1, math.ceil(n / batch) * epochs)


def configs(cfg: PipelineConfig, base_model: str, data: dict[str, str], out: str) -> dict[str, dict]:
    """The override config of each step (a dict, written as YAML by `write`)."""
    a, out = cfg.align, os.path.abspath(out)
    gpus = max(1, cfg.run.gpus_per_node)
    hf = {s: os.path.join(out, "hf", s) for s in STEPS}
    # NeMo-RL counts a global batch across GPUs; micro-batches of 1-2 rows per GPU fit any model here
    micro = max(1, min(2, a.batch_size // gpus))

    def policy(model: str, lr: float, lora: bool = True) -> dict:
        body = {
            "model_name": model,
            "tokenizer": {"name": model},
            "train_global_batch_size": a.batch_size,
            "train_micro_batch_size": micro,
            "max_total_sequence_length": a.max_len,
            "optimizer": {"kwargs": {"lr": lr}},
        }
        if lora:  # rm.yaml has no LoRA block: NeMo-RL's reward model trains every weight
            body["dtensor_cfg"] = {"lora_cfg": {"enabled": a.lora, "dim": a.lora_r, "alpha": 2 * a.lora_r}}
        return body

    def common(step: str) -> dict:
        return {
            "defaults": f"{NEMO_RL_DIR}/examples/configs/{UPSTREAM[step]}",
            "checkpointing": {
                "enabled": True,
                "checkpoint_dir": os.path.join(out, "results", step),
                "metric_name": None,
                "keep_top_k": 1,
            },
            "logger": {"log_dir": os.path.join(out, "logs", step), "wandb_enabled": False, "tensorboard_enabled": True},
            "cluster": {"gpus_per_node": gpus, "num_nodes": max(1, cfg.run.nodes)},
        }

    def preference_data() -> dict:
        # a local JSONL loads as one split named train: the inherited `validation.split: validation` would fail
        return {
            "train": {"dataset_name": "BinaryPreferenceDataset", "data_path": data["pairs"], "split": "train"},
            "validation": {
                "dataset_name": "BinaryPreferenceDataset",
                "data_path": data["eval_pairs"],
                "split": "train",
            },
        }

    n_sft = sum(1 for _ in read_jsonl(data["sft"]))
    n_pairs = sum(1 for _ in read_jsonl(data["pairs"]))
    n_prompts = sum(1 for _ in read_jsonl(data["rl_prompts"]))
    prompts_per_step = max(1, a.batch_size // a.grpo_generations)
    return {
        "sft": {
            **common("sft"),
            "sft": {
                "max_num_epochs": a.sft_epochs,
                "max_num_steps": _steps(n_sft, a.batch_size, a.sft_epochs),
                "val_period": 100,
                "seed": a.seed,
            },
            "policy": policy(base_model, a.sft_lr),
            "data": {
                "train": {
                    "dataset_name": "ResponseDataset",
                    "data_path": data["sft"],
                    "split": "train",
                    "split_validation_size": 0.05,
                    "seed": a.seed,
                },
                "validation": None,
            },
        },
        "dpo": {
            **common("dpo"),
            "dpo": {
                "max_num_epochs": a.dpo_epochs,
                "max_num_steps": _steps(n_pairs, a.batch_size, a.dpo_epochs),
                "val_period": 50,
                "seed": a.seed,
                "reference_policy_kl_penalty": a.dpo_beta,
                "preference_loss_weight": 1.0,
                "sft_loss_weight": a.dpo_sft_weight,
            },
            "policy": policy(hf["sft"], a.dpo_lr),
            "data": preference_data(),
        },
        "reward": {
            **common("reward"),
            "rm": {
                "max_num_epochs": a.reward_epochs,
                "max_num_steps": _steps(n_pairs, a.batch_size, a.reward_epochs),
                "seed": a.seed,
            },
            "policy": {
                **policy(hf["sft"], a.reward_lr, lora=False),
                "reward_model_cfg": {"enabled": True, "reward_model_type": "bradley_terry"},
            },
            "data": preference_data(),
        },
        "grpo": {
            **common("grpo"),
            "grpo": {
                "num_prompts_per_step": prompts_per_step,
                "num_generations_per_prompt": a.grpo_generations,
                "max_num_steps": _steps(n_prompts, prompts_per_step),
                "val_period": 0,
                "seed": a.seed,
            },
            "loss_fn": {"reference_policy_kl_penalty": a.grpo_beta},
            "policy": {
                **policy(hf["dpo"], a.grpo_lr),
                "generation": {"max_new_tokens": a.grpo_max_new_tokens, "temperature": 0.8},
            },
            "data": {
                "train": {"dataset_name": "ResponseDataset", "data_path": data["rl_prompts"], "split": "train"},
                "validation": None,
                "default": {"env_name": "reward_model", "prompt_file": None},
            },
            "env": {"reward_model": {"model_name": hf["reward"], "tokenizer": {"name": hf["reward"]}}},
            # the reward model's environment holds a GPU of its own beside the policy's
            "cluster": {**common("grpo")["cluster"], "gpus_per_node": max(2, gpus)},
        },
    }


def command(step: str, config_path: str, overrides: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The command NeMo-RL's docs give for a step, run from NEMO_RL_DIR inside the container."""
    return ["uv", "run", SCRIPTS[step], "--config", config_path, *overrides]


def convert_command(step: str, out: str) -> str:
    """Shell: the step's last DCP checkpoint -> an HF folder (hf/<step>) the next step can load."""
    results = os.path.join(out, "results", step)
    last = f"$(ls -d {shlex.quote(results)}/step_* | sort -V | tail -n 1)"
    return (
        f"uv run examples/converters/convert_dcp_to_hf.py --config {last}/config.yaml "
        f"--dcp-ckpt-path {last}/policy/weights --hf-ckpt-path {shlex.quote(os.path.join(out, 'hf', step))}"
    )


def sbatch_command(cfg: PipelineConfig, step: str, config_path: str) -> str:
    """Several nodes on Slurm: NeMo-RL's ray.sub (a Ray cluster over the job's nodes, then COMMAND)."""
    r = cfg.run
    mounts = ",".join(r.mounts)
    env = (
        f"COMMAND={shlex.quote(shlex.join(command(step, config_path)))} "
        f"CONTAINER={shlex.quote(r.nemo_rl_image or CONTAINER)} MOUNTS={shlex.quote(mounts)}"
    )
    opts = [
        f"--nodes={max(1, r.nodes)}",
        f"--gres=gpu:{max(1, r.gpus_per_node)}",
        f"--time={r.time_limit}",
        f"--job-name=kollm-nemo-rl-{step}",
    ]
    if r.account:
        opts.append(f"--account={r.account}")
    if r.partition:
        opts.append(f"--partition={r.partition}")
    return f"{env} sbatch {' '.join(opts)} ray.sub"


def write(cfg: PipelineConfig, base_model: str, files: dict[str, str], out: str) -> str:
    """Data, one YAML per step and run_all.sh (every step in order, converting between them)."""
    import yaml

    out = os.path.abspath(out)
    data = write_data(files, out)
    written = {}
    for step, body in configs(cfg, base_model, data, out).items():
        written[step] = os.path.join(out, f"{step}.yaml")
        with open(written[step], "w", encoding="utf-8") as f:
            f.write(
                f"# NeMo-RL v0.7 config for kollm's {step} step (written by aligner/nemo_rl.py).\n"
                f"# Run in {CONTAINER}, from {NEMO_RL_DIR}: {shlex.join(command(step, written[step]))}\n"
            )
            yaml.safe_dump(body, f, allow_unicode=True, sort_keys=False)
    # SFT first, then DPO and the reward model from SFT's folder, then GRPO from DPO's with the reward model
    lines = [
        "#!/usr/bin/env bash",
        f"# All four NeMo-RL steps in order, inside {CONTAINER}.",
        "set -euo pipefail",
        f"cd {NEMO_RL_DIR}",
    ]
    for step in STEPS:
        lines += [shlex.join(command(step, written[step])), convert_command(step, out)]
    with open(os.path.join(out, "run_all.sh"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return out
