"""Alignment (stage `align`): SFT -> DPO -> reward model -> GRPO with TRL on CPU (NeMo-RL configs for GPUs are
aligner/'s).

    build, AlignmentData          SFT rows, preference pairs and GRPO prompts from real labels
    sft, dpo, reward_model, grpo  the TRL steps; each returns a StepResult (model folder, held-out metrics)
    make_rewards, fit_sentiment, RewardModelScore   GRPO's rewards
    Judge, sentiment_following, toxic_rate          the judges the evaluation asks

Modules: datasets, steps, rewards, judge; config (`align.*`).
"""

from kollm.align.config import AlignConfig as AlignConfig
from kollm.core.lazy import public_api

__getattr__, __dir__ = public_api(
    __name__,
    {
        "datasets": "build AlignmentData for_trainer NOT_A_REVIEW_REQUEST",
        "steps": "sft dpo reward_model grpo StepResult",
        "rewards": "make_rewards fit_sentiment RewardModelScore score_ids reward_ids",
        "judge": "Judge sample_answers sentiment_following toxic_rate",
    },
    eager=("AlignConfig",),
)
