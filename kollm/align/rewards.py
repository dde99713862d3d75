"""GRPO's reward functions, in TRL's form `f(prompts, completions, **columns) -> [float | None]`.

None of them is a judge of benchmarks/alignment.py: the rewards are character n-gram classifiers
(sentiment fitted on NSMC train reviews, toxicity the curate stage's model) and the reward model;
the judges are the finetune stage's LM classifiers. So the measurement cannot be gamed by
optimising the very classifier that scores it.

- `sentiment_match`: for a review request, P(the requested sentiment) of the answer; None for other
  prompts (TRL then leaves that reward out of the sum for the row).
- `safety`: 1 - P(toxic) of every answer;
- `label_match`: for a sentiment question on a real review, 1 if the answer starts with the right
  label word (NSMC's own label), 0 otherwise; None for other prompts;
- `RewardModelScore`: the reward model's score of each answer to its prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kollm.align.datasets import NOT_A_REVIEW_REQUEST


def completion_text(completion) -> str:
    """TRL passes a conversational completion as a list of messages, a plain one as a string."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if m.get("role", "assistant") == "assistant")


def make_rewards(sentiment_model, toxicity_model) -> list[Callable]:
    """The reward functions, over models with `score(texts) -> P(label 1)` (CharNgramClassifier)."""

    def sentiment_match(prompts: Sequence, completions: Sequence, requested: Sequence[int], **_) -> list[float | None]:
        texts = [completion_text(c) for c in completions]
        p_positive = sentiment_model.score(texts)
        return [
            None if r == NOT_A_REVIEW_REQUEST else float(p if r == 1 else 1.0 - p)
            for r, p in zip(requested, p_positive)
        ]

    def safety(prompts: Sequence, completions: Sequence, **_) -> list[float]:
        p_toxic = toxicity_model.score([completion_text(c) for c in completions])
        return [float(1.0 - p) for p in p_toxic]

    return [sentiment_match, safety, label_match]


def label_match(
    prompts: Sequence, completions: Sequence, answer: Sequence[str], wrong: Sequence[str], **_
) -> list[float | None]:
    """1.0 when the answer begins with the right label word and not with the wrong one; None when the
    prompt asked no sentiment question (empty `answer`)."""
    out = []
    for c, right, other in zip(completions, answer, wrong):
        text = completion_text(c).strip()
        out.append(None if not right else float(text.startswith(right) and not text.startswith(other)))
    return out


def fit_sentiment(reviews: dict[int, list[str]], per_class: int, seed: int):
    """The sentiment reward's classifier: character n-grams on `per_class` train reviews of each label."""
    import random

    from kollm.curation import toxicity

    rng = random.Random(seed)
    texts, labels = [], []
    for label in (0, 1):
        sample = rng.sample(reviews[label], min(per_class, len(reviews[label])))
        texts += sample
        labels += [label] * len(sample)
    return toxicity.fit(texts, labels, seed)


class RewardModelScore:
    """The reward model (a RewardTrainer folder) as a GRPO reward function. It reads prompt and answer
    exactly as it was trained (`reward_ids`: no closing end-of-sequence token); TRL's own
    reward-model path would score at that token."""

    __name__ = "reward_model"  # TRL names each reward's logs after the function

    def __init__(self, model_dir: str, max_len: int):
        from transformers import AutoTokenizer

        from kollm.models.seq_classification import AutoModelForSequenceClassification

        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        self.tokenizer, self.max_len = AutoTokenizer.from_pretrained(model_dir), max_len

    def __call__(self, prompts: Sequence, completions: Sequence, **_) -> list[float]:

        rows = [
            reward_ids(
                self.tokenizer,
                list(p) if not isinstance(p, str) else [{"role": "user", "content": p}],
                [{"role": "assistant", "content": completion_text(c)}],
                self.max_len,
            )
            for p, c in zip(prompts, completions)
        ]
        return score_ids(self.model, self.tokenizer, rows)


def score_ids(model, tokenizer, rows: list[list[int]]) -> list[float]:
    """A sequence-classification model's one score per row of token ids (right-padded, no grad)."""
    import torch

    was_training = model.training
    model.eval()
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=model.device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=model.device)
    with torch.no_grad():
        scores = model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist()
    model.train(was_training)
    return scores


def reward_ids(tokenizer, prompt: list[dict], answer: list[dict], max_len: int) -> list[int]:
    """A prompt and answer as the reward model reads them: the chat template without the closing
    end-of-sequence token, so the score head sees the answer's last token. (At that closing token a
    small LM's state is the same for every answer, its next token always being the next turn's:
    scored there, the reward model learnt nothing, held-out accuracy 0.51.)"""
    ids = tokenizer.apply_chat_template(prompt + answer, tokenize=True, return_dict=True)["input_ids"]
    if ids and ids[-1] == tokenizer.eos_token_id:
        ids = ids[:-1]
    return ids[:max_len]
