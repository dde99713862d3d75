"""The align stage's settings: which steps (SFT, DPO, reward model, GRPO), their data and rewards."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

from kollm.core.errors import KollmError

AlignStep = Literal["sft", "dpo", "reward", "grpo"]  # in this order; each step's model feeds the next


@dataclass
class AlignConfig:
    # which steps run (TRL on CPU; aligner/nemo_rl.py writes the same steps for NeMo-RL on GPUs):
    # sft -> dpo -> grpo make the policy, reward trains GRPO's reward model next to it
    steps: list[AlignStep] = field(default_factory=lambda: ["sft", "dpo", "reward", "grpo"])
    sft_examples: int = 2000
    # sentiment questions on NSMC train reviews added to the SFT mixture's, so that the chat model keeps the
    # task: 2,000 of them (the laptop mixture's share) left its chat-format NSMC 7 points under the classifier's
    sft_task_examples: int = 0
    sft_epochs: int = 1
    dpo_pairs: int = 1000  # also the reward model's training pairs
    dpo_epochs: int = 1
    dpo_beta: float = 0.1
    dpo_sft_weight: float = 1.0  # weight of the chosen answers' NLL next to the DPO loss (RPO); 0 = plain DPO
    batch_size: int = 8
    sft_lr: float = 5e-4
    dpo_lr: float = 2e-4
    reward_lr: float = 2e-4
    reward_epochs: int = 1
    grpo_prompts: int = 48  # prompts GRPO samples answers to (review requests, comment requests)
    grpo_generations: int = 4  # answers per prompt (a group); align.batch_size must be a multiple
    grpo_max_new_tokens: int = 32
    grpo_lr: float = 3e-4  # at 1e-3 a 5M-parameter policy learnt to please the classifiers with gibberish
    grpo_beta: float = 0.1  # KL to the reference (the policy GRPO starts from); 0 = no reference model
    # GRPO's rewards, by weight (0 = unused): the reward model (when align.steps has reward), the
    # sentiment classifier (character n-grams on NSMC train reviews: a review request earns P(the
    # requested sentiment)), safety (1 - P(toxic), the curate stage's toxicity model)
    grpo_reward_model_weight: float = 0.5
    # 2: a review request's answer is judged by its sentiment first; at 1 (with the reward model's 0.5 and
    # safety's 1 beside it) GRPO took the laptop preset's sentiment-following from 0.86 to 0.84
    grpo_sentiment_weight: float = 2.0
    grpo_safety_weight: float = 1.0
    # a sentiment question on a real train review earns 1 for NSMC's own label word: the policy keeps the task.
    # 2, as a followed review request: at 1 the reward model's score (std ~1.5 x 0.5) outweighed it
    grpo_label_weight: float = 2.0
    # how a group's summed rewards become advantages (TRL's scale_rewards): "group" divides by each group's
    # own std, so four answers that all follow the request, rewards a hair apart, get advantages of +-1 from
    # noise; "batch" divides by the batch's std, so such groups barely move the policy (PPO Lite);
    # "none" is Dr. GRPO's choice
    grpo_scale_rewards: Literal["group", "batch", "none"] = "batch"
    sentiment_reward_examples: int = 20000  # train reviews per class the sentiment reward is fitted on
    lora: bool = False  # LoRA adapters for every step (merged before saving); the reference = adapters off
    lora_r: int = 8
    max_len: int = 128
    eval_pairs: int = 200
    seed: int = 1234

    def check(self) -> None:
        validate_align(self)


def check_grpo_groups(a: AlignConfig) -> None:
    """Each GRPO step samples whole groups of answers (TRL's own check says so later, less plainly)."""
    if a.batch_size % a.grpo_generations:
        raise KollmError(
            f"align.batch_size={a.batch_size} must be a multiple of align.grpo_generations="
            f"{a.grpo_generations}: each GRPO step samples whole groups of answers"
        )


def validate_align(a: AlignConfig) -> None:
    """The align section's own rules (its steps' names are checked with every other choice: check_choices)."""
    order = list(typing.get_args(AlignStep))
    if not a.steps:
        raise KollmError(f"align.steps=[]: choose steps from {', '.join(order)} (in that order)")
    if a.steps != sorted(a.steps, key=order.index) or len(set(a.steps)) != len(a.steps):
        raise KollmError(f"align.steps={a.steps}: each step once, in the order {', '.join(order)}")
    if "sft" not in a.steps:
        raise KollmError("align.steps: the steps start from the SFT model, so they need sft")
    check_grpo_groups(a)
    if a.sft_task_examples < 0:
        raise KollmError(f"align.sft_task_examples={a.sft_task_examples}: extra sentiment questions, >= 0")
    if "grpo" in a.steps and not (
        a.grpo_sentiment_weight
        or a.grpo_safety_weight
        or a.grpo_label_weight
        or (a.grpo_reward_model_weight and "reward" in a.steps)
    ):
        raise KollmError("align.steps has grpo but every GRPO reward weighs 0 (align.grpo_*_weight)")
