"""The evaluate stage's settings: test sets, baselines, the prompting study, sample generations."""

from __future__ import annotations

from dataclasses import dataclass, field

from kollm.data import prompts


@dataclass
class EvaluateConfig:
    nsmc_path: str = ""  # any JSONL with the NSMC schema; empty = the run's test split
    max_examples: int = 2000  # balanced sample of the test set; 0 = all labelled rows
    # train rows per class for the TF-IDF + logistic-regression baselines; 0 = each task's whole train split
    baseline_examples_per_class: int = 0
    prompt_study_examples: int = 300  # NSMC test rows the prompting study asks each prompt on
    zero_shot_examples: int = (
        0  # rows per task for the zero-shot (lm-eval) scores, the first of the shuffled test rows; 0 = all
    )
    shots: list[int] = field(default_factory=lambda: [0, 4])  # solved examples before the question
    perplexity_docs: int = 1000
    max_new_tokens: int = 48
    prompts: list[str] = field(default_factory=lambda: list(prompts.GENERATION_PROMPTS))
