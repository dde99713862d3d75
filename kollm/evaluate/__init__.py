"""Evaluation (stage `evaluate`): baselines, perplexity, zero/few-shot scores and the prompting study.

    baselines, perplexity, generate   TF-IDF + logistic-regression baselines; held-out perplexity; samples
    harness.evaluate, harness.command  lm-evaluation-harness on kollm's Korean tasks (lm_eval_tasks/)
    study                              the prompting study: the same reviews asked several ways

Modules: measures (baselines, perplexity, samples), harness (+ lm_eval_tasks/, the task YAMLs lm-eval reads), prompting; config (`evaluate.*`).
"""

from kollm.core.lazy import public_api
from kollm.evaluate.config import EvaluateConfig as EvaluateConfig

__getattr__, __dir__ = public_api(
    __name__,
    {
        "measures": "baselines perplexity generate tfidf_predictions",
        "prompting": "study",
    },
    submodules="harness",
    eager=("EvaluateConfig",),
)
