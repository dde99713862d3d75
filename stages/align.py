"""Align the pretrained LM (TRL on CPU): SFT, DPO, a reward model and GRPO, on data from real labels.

The steps are `align.steps` (default all four; aligner/ writes the same steps for NeMo-RL on GPUs).
Outputs: model_dir (the last policy: GRPO's, else DPO's, else SFT's), metrics (per step: its model
folder, steps, loss and held-out metrics; JSON), datacard, nemo_rl_dir (NeMo-RL configs and data
for this run), nemo_aligner_dir (the legacy NeMo-Aligner DPO config and data).
"""

from __future__ import annotations

import dataclasses
import os

from kollm.config import PipelineConfig
from kollm.core import write_json, write_jsonl
from stages.base import Outputs, inputs
from stages.curate import CurateOutputs
from stages.data import DataOutputs
from stages.pretrain import PretrainOutputs


@dataclasses.dataclass(frozen=True)
class AlignOutputs(Outputs):
    model_dir: str  # the last policy (GRPO's, else DPO's, else SFT's): the pipeline's "model" role
    metrics: str  # per step: its model folder, steps, loss and held-out metrics (JSON)
    datacard: str  # where each alignment example came from (Markdown)
    nemo_rl_dir: str  # NeMo-RL configs and data for this run (the GPU path)
    nemo_aligner_dir: str  # the legacy NeMo-Aligner DPO config and data


def run(cfg: PipelineConfig, out: str) -> dict:
    import torch

    from aligner import nemo_aligner, nemo_rl
    from kollm.align import (
        RewardModelScore,
        StepResult,
        build,
        dpo,
        fit_sentiment,
        grpo,
        make_rewards,
        reward_model,
        sft,
    )
    from kollm.curation import CharNgramClassifier

    a = cfg.align
    built = build(
        inputs(cfg, DataOutputs).paths(),
        a.sft_examples,
        a.dpo_pairs,
        a.eval_pairs,
        a.seed,
        a.grpo_prompts if "grpo" in a.steps else 0,
        a.sft_task_examples,
    )
    files = {
        "sft": os.path.join(out, "sft_train.jsonl"),
        "pairs": os.path.join(out, "pairs_train.jsonl"),
        "eval_pairs": os.path.join(out, "pairs_eval.jsonl"),
        "rl_prompts": os.path.join(out, "rl_prompts.jsonl"),
    }
    for name, rows in (
        ("sft", built.sft),
        ("pairs", built.train_pairs),
        ("eval_pairs", built.eval_pairs),
        ("rl_prompts", built.rl_prompts),
    ):
        write_jsonl(files[name], rows)
    card = os.path.join(out, "datacard.md")
    with open(card, "w", encoding="utf-8") as f:
        f.write(built.card())

    # Start from the pretrained LM, not the fine-tuned classifier: that is a task model, while SFT
    # mixes the sentiment task in with the rest.
    base = inputs(cfg, PretrainOutputs).model_dir
    torch.manual_seed(a.seed)
    done: dict[str, StepResult] = {}
    done["sft"] = sft(base, built.sft, a, os.path.join(out, "sft"))
    policy = done["sft"].model_dir
    if "dpo" in a.steps:
        done["dpo"] = dpo(policy, built.train_pairs, built.eval_pairs, a, os.path.join(out, "dpo"))
        policy = done["dpo"].model_dir
    if "reward" in a.steps:
        done["reward"] = reward_model(
            done["sft"].model_dir, built.train_pairs, built.eval_pairs, a, os.path.join(out, "reward")
        )
    if "grpo" in a.steps:
        sentiment = fit_sentiment(built.train_reviews, a.sentiment_reward_examples, a.seed)
        sentiment_match, safety, label_match = make_rewards(
            sentiment, CharNgramClassifier.load(inputs(cfg, CurateOutputs).toxicity_model)
        )
        funcs = [
            (sentiment_match, a.grpo_sentiment_weight),
            (safety, a.grpo_safety_weight),
            (label_match, a.grpo_label_weight),
        ]
        if "reward" in a.steps:
            funcs.append((RewardModelScore(done["reward"].model_dir, a.max_len), a.grpo_reward_model_weight))
        funcs = [(f, w) for f, w in funcs if w]
        done["grpo"] = grpo(
            policy, built.rl_prompts, [f for f, _ in funcs], [w for _, w in funcs], a, os.path.join(out, "grpo")
        )
        policy = done["grpo"].model_dir

    metrics = {
        step: {"model_dir": r.model_dir, "steps": r.steps, "train_loss": r.train_loss, **r.metrics}
        for step, r in done.items()
    }
    metrics_path = os.path.join(out, "metrics.json")
    write_json(metrics_path, metrics)
    # The same data files, for the GPU path (NeMo-RL) and the legacy one (NeMo-Aligner)
    nemo_rl_dir = nemo_rl.write(cfg, base, files, os.path.join(out, "nemo_rl"))
    aligner_dir = nemo_aligner.write(cfg, built.train_pairs, built.eval_pairs, base, os.path.join(out, "nemo_aligner"))
    return {
        "outputs": AlignOutputs(
            model_dir=policy,
            metrics=os.path.abspath(metrics_path),
            datacard=os.path.abspath(card),
            nemo_rl_dir=nemo_rl_dir,
            nemo_aligner_dir=aligner_dir,
        ),
        "counts": {
            "sft_examples": len(built.sft),
            "pairs": len(built.train_pairs),
            "eval_pairs": len(built.eval_pairs),
            "rl_prompts": len(built.rl_prompts),
            **{f"{s}_steps": r.steps for s, r in done.items()},
        },
        "metrics": {
            **{f"{s}_train_loss": r.train_loss for s, r in done.items()},
            **(
                {"dpo_eval_before": done["dpo"].metrics["before"], "dpo_eval_after": done["dpo"].metrics["after"]}
                if "dpo" in done
                else {}
            ),
            **({"reward_model_accuracy": done["reward"].metrics["accuracy"]} if "reward" in done else {}),
        },
    }
