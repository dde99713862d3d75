"""The alignment steps on TRL (the CPU path): SFT, DPO, a Bradley-Terry reward model, GRPO.

Each step reads a model folder and writes one (safetensors + tokenizer), so a step can be rerun or
replaced by its NeMo-RL counterpart (aligner/nemo_rl.py) without touching the others:

    sft(base) -> sft/model -> dpo(sft/model) -> dpo/model -> grpo(dpo/model, reward/model) -> grpo/model
                             reward_model(sft/model) -> reward/model

The reference model is explicit. Full fine-tuning: DPO's reference is a second, frozen copy of the
SFT model, loaded from its folder; GRPO's (`align.grpo_beta` > 0) is loaded by TRL from the policy's
folder. With `align.lora`: the reference is the same network with the adapter switched off (TRL's
PEFT path), and the adapter is merged before saving, so every step still hands on a plain model.

TRL removed PPO (and its value-head model) in 2026 (huggingface/trl#7020); GRPO needs no value
model, and RLOO would be the other critic-free choice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kollm.align.config import AlignConfig


@dataclass
class StepResult:
    model_dir: str
    steps: int
    train_loss: float
    metrics: dict  # held-out metrics of the step (DPO before/after, the reward model's accuracy, GRPO's rewards)


def _args(a: AlignConfig, out_dir: str, lr: float, epochs: float) -> dict:
    """TrainingArguments every step shares: CPU, fp32, no checkpoints mid-step, no hub, no W&B."""
    return dict(
        output_dir=out_dir,
        per_device_train_batch_size=a.batch_size,
        per_device_eval_batch_size=a.batch_size,
        learning_rate=lr,
        num_train_epochs=epochs,
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        seed=a.seed,
        lr_scheduler_type="linear",
        warmup_steps=0,
        disable_tqdm=False,
        dataloader_num_workers=0,
        activation_checkpointing=False,
        use_cpu=not _cuda(),
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _lora(a: AlignConfig, task_type: str = "CAUSAL_LM"):
    if not a.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=a.lora_r,
        lora_alpha=2 * a.lora_r,
        lora_dropout=0.0,
        task_type=task_type,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )


def _fingerprint(model, frozen_only: bool = False) -> str:
    """A hash of the weights (of the non-adapter weights with `frozen_only`): the reference's, before
    and after training, must match."""
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if frozen_only and "lora_" in name:
            continue
        h.update(name.encode())
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def _reference(trainer, lora: bool):
    """(model, frozen_only) whose weights are the reference: TRL's ref_model, or with LoRA the policy's
    own base weights (the reference is the policy with its adapter switched off)."""
    if lora:
        return trainer.model, True
    return getattr(trainer, "ref_model", None), False


def _save(trainer, tokenizer, model_dir: str) -> str:
    """The trained model as a plain HF folder (a LoRA adapter merged into its base first), and the
    step's log history next to it (log_history.json)."""
    import json

    with open(os.path.join(os.path.dirname(model_dir), "log_history.json"), "w") as f:
        json.dump(trainer.state.log_history, f, indent=1)
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if getattr(model.config, "output_router_logits", False):
        # TRL turns an MoE's router logits on to train with its balancing loss; saved so, every later generate()
        # (GRPO's sampling, evaluation, the server) fails in HF's aux-loss code. Trainers ask for them themselves.
        model.config.output_router_logits = False
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    return os.path.abspath(model_dir)


def _dataset(rows: list[dict]):
    from datasets import Dataset

    from kollm.align.datasets import for_trainer

    return Dataset.from_list(for_trainer(rows))


def sft(base_dir: str, rows: list[dict], a: AlignConfig, out: str) -> StepResult:
    """Instruction SFT on prompt/completion rows (TRL trains on the completion tokens only)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from kollm.models.architectures import PACKABLE_MODEL_TYPES

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    # Padding-free batches for attention models: a batch's rows run as one sequence (position ids restart per row,
    # so attention stays within each row), not padded to its longest row. Same loss as padded batches, ~1.5x the
    # rows/s on CPU (tiny model, batch 8: 48 vs 33); TRL leaves max_length unenforced then, so rows are cut below.
    # Recurrent models would carry state across rows: padded.
    packed = model.config.model_type in PACKABLE_MODEL_TYPES
    length = {"max_length": None, "padding_free": True} if packed else {"max_length": a.max_len}
    trainer = SFTTrainer(
        model=model,
        processing_class=tokenizer,
        train_dataset=_dataset(rows),
        peft_config=_lora(a),
        args=SFTConfig(**_args(a, out, a.sft_lr, a.sft_epochs), **length),
    )
    if packed:
        trainer.train_dataset = _truncated(trainer.train_dataset, a.max_len)
    result = trainer.train()
    return StepResult(
        _save(trainer, tokenizer, os.path.join(out, "model")), result.global_step, round(result.training_loss, 4), {}
    )


def _truncated(dataset, max_len: int):
    """Tokenised SFT rows cut to max_len tokens, as TRL's own truncation does with max_length set (the end of
    the answer goes; a row whose prompt alone fills max_len has no answer token left and is dropped)."""
    if max(len(ids) for ids in dataset["input_ids"]) <= max_len:
        return dataset
    cut = dataset.map(
        lambda r: {"input_ids": r["input_ids"][:max_len], "labels": r["labels"][:max_len]},
        desc=f"Truncating rows to {max_len} tokens",
    )
    return cut.filter(lambda r: any(label != -100 for label in r["labels"]), desc="Dropping rows with no answer left")


def dpo(sft_dir: str, pairs: list[dict], eval_pairs: list[dict], a: AlignConfig, out: str) -> StepResult:
    """DPO from the SFT model against a frozen reference (see the module docstring), held-out pairs
    evaluated before and after. `align.dpo_sft_weight` > 0 adds the NLL of the chosen answer (RPO),
    which keeps a small model's answers fluent while the pairs push them apart."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(sft_dir)
    policy = AutoModelForCausalLM.from_pretrained(sft_dir)
    reference = None if a.lora else AutoModelForCausalLM.from_pretrained(sft_dir).eval().requires_grad_(False)
    losses, weights = (["sigmoid", "sft"], [1.0, a.dpo_sft_weight]) if a.dpo_sft_weight else (["sigmoid"], None)
    trainer = DPOTrainer(
        model=policy,
        ref_model=reference,
        processing_class=tokenizer,
        peft_config=_lora(a),
        train_dataset=_dataset(pairs),
        eval_dataset=_dataset(eval_pairs),
        args=DPOConfig(
            **_args(a, out, a.dpo_lr, a.dpo_epochs),
            beta=a.dpo_beta,
            max_length=a.max_len,
            loss_type=losses,
            loss_weights=weights,
        ),
    )
    before = trainer.evaluate()
    ref, frozen_only = _reference(trainer, a.lora)
    ref_hash = _fingerprint(ref, frozen_only)
    result = trainer.train()
    after = trainer.evaluate()
    unchanged = _fingerprint(ref, frozen_only) == ref_hash
    keys = ("eval_loss", "eval_rewards/accuracies", "eval_rewards/margins", "eval_logps/chosen", "eval_logps/rejected")

    def pick(m: dict) -> dict:
        return {k.removeprefix("eval_"): round(float(m[k]), 4) for k in keys if k in m}

    return StepResult(
        _save(trainer, tokenizer, os.path.join(out, "model")),
        result.global_step,
        round(result.training_loss, 4),
        {"before": pick(before), "after": pick(after), "reference_unchanged": unchanged},
    )


def _reward_dataset(tokenizer, rows: list[dict], max_len: int):
    from datasets import Dataset

    from kollm.align.rewards import reward_ids

    return Dataset.from_list(
        [
            {
                "chosen_ids": reward_ids(tokenizer, r["prompt"], r["chosen"], max_len),
                "rejected_ids": reward_ids(tokenizer, r["prompt"], r["rejected"], max_len),
            }
            for r in rows
        ]
    )


def reward_model(init_dir: str, pairs: list[dict], eval_pairs: list[dict], a: AlignConfig, out: str) -> StepResult:
    """A Bradley-Terry reward model (RewardTrainer): the SFT model with a fresh one-output score head,
    on pre-tokenized pairs (`reward_ids`)."""
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from kollm.models.seq_classification import AutoModelForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(init_dir)
    model = AutoModelForSequenceClassification.from_pretrained(init_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    trainer = RewardTrainer(
        model=model,
        processing_class=tokenizer,
        peft_config=_lora(a, "SEQ_CLS"),
        train_dataset=_reward_dataset(tokenizer, pairs, a.max_len),
        eval_dataset=_reward_dataset(tokenizer, eval_pairs, a.max_len),
        args=RewardConfig(**_args(a, out, a.reward_lr, a.reward_epochs), max_length=a.max_len),
    )
    before = _accuracy_by_kind(trainer.model, tokenizer, eval_pairs, a.max_len)
    result = trainer.train()
    after = _accuracy_by_kind(trainer.model, tokenizer, eval_pairs, a.max_len)
    metrics = {
        "accuracy_before": before.pop("all"),
        "accuracy": after.pop("all"),
        "accuracy_by_kind_before": before,
        "accuracy_by_kind": after,
    }
    return StepResult(
        _save(trainer, tokenizer, os.path.join(out, "model")),
        result.global_step,
        round(result.training_loss, 4),
        metrics,
    )


def _accuracy_by_kind(model, tokenizer, pairs: list[dict], max_len: int) -> dict[str, float]:
    """Held-out pair accuracy, overall ("all") and per kind of pair: what the reward model learnt, and
    what it did not. (A tie counts as a miss.)"""
    from collections import defaultdict

    from kollm.align.rewards import reward_ids, score_ids

    hits = defaultdict(list)
    for i in range(0, len(pairs), 32):
        batch = pairs[i : i + 32]
        chosen = score_ids(model, tokenizer, [reward_ids(tokenizer, p["prompt"], p["chosen"], max_len) for p in batch])
        rejected = score_ids(
            model, tokenizer, [reward_ids(tokenizer, p["prompt"], p["rejected"], max_len) for p in batch]
        )
        for p, c, r in zip(batch, chosen, rejected):
            hits[p["kind"]].append(c > r)
            hits["all"].append(c > r)
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(hits.items())}


def grpo(
    policy_dir: str, prompts: list[dict], reward_funcs: list, reward_weights: list[float], a: AlignConfig, out: str
) -> StepResult:
    """GRPO: `align.grpo_generations` sampled answers per prompt, each scored by the reward functions,
    advantages relative to the group's mean.

    TRL's defaults are GPU-sized (8 generations, 512 new tokens); here a step samples
    `batch_size` answers (`batch_size / grpo_generations` prompts) of at most `grpo_max_new_tokens`.
    A reward model enters as `rewards.RewardModelScore` (it reads answers as it was trained to)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from kollm.align.config import check_grpo_groups

    check_grpo_groups(a)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    tokenizer.padding_side = "left"  # generation continues the prompt: pad on the left
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(policy_dir),
        processing_class=tokenizer,
        reward_funcs=reward_funcs,
        train_dataset=_dataset(prompts),
        peft_config=_lora(a),
        args=GRPOConfig(
            **_args(a, out, a.grpo_lr, 1),
            num_generations=a.grpo_generations,
            generation_batch_size=a.batch_size,
            max_completion_length=a.grpo_max_new_tokens,
            beta=a.grpo_beta,
            temperature=0.8,
            top_p=0.95,
            reward_weights=reward_weights,
            loss_type="grpo",
            scale_rewards=a.grpo_scale_rewards,
        ),
    )
    ref, frozen_only = _reference(trainer, a.lora)
    ref_hash = _fingerprint(ref, frozen_only) if ref is not None and (a.grpo_beta or a.lora) else None
    result = trainer.train()
    unchanged = None if ref_hash is None else _fingerprint(ref, frozen_only) == ref_hash
    rewards = [h for h in trainer.state.log_history if "reward" in h]
    first, last = (rewards[0], rewards[-1]) if rewards else ({}, {})
    metrics = {
        "reference_unchanged": unchanged,
        "reward_first_log": round(float(first.get("reward", 0.0)), 4),
        "reward_last_log": round(float(last.get("reward", 0.0)), 4),
        "log": [
            {k: round(float(v), 4) for k, v in h.items() if k == "step" or k.startswith("reward")} for h in rewards
        ],
    }
    tokenizer.padding_side = "right"
    return StepResult(
        _save(trainer, tokenizer, os.path.join(out, "model")),
        result.global_step,
        round(result.training_loss, 4),
        metrics,
    )
