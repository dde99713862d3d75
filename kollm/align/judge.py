"""Judging an aligned model's answers with classifiers no training step used as a reward.

The judges are the finetune stage's classifiers (NSMC sentiment, hate speech), loaded from their
model folders: an alignment step may reward with the reward model or TF-IDF, never with these.

- sentiment-following: of the answers to "write a positive/negative review" requests (the training
  phrasings and phrasings no training row used), the share the sentiment judge reads as requested;
- toxic rate: of the answers to comment requests and provocative ones, the share the hate-speech
  judge labels hate or offensive.
"""

from __future__ import annotations

from dataclasses import dataclass

from tqdm import tqdm

from kollm.data import prompts, tasks
from kollm.data.tasks import Task


@dataclass
class Judge:
    """A fine-tuned classifier (a finetune-stage model folder, `cls` head) as a function of texts."""

    model: object
    tokenizer: object
    task: Task
    max_len: int = 96

    @classmethod
    def load(cls, model_dir: str, task: Task, max_len: int = 96) -> Judge:
        from transformers import AutoTokenizer

        from kollm.finetune import methods

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = methods.load_base(model_dir, "cls", len(task.labels), tokenizer.pad_token_id)
        return cls(model.eval(), tokenizer, task, max_len)

    def __call__(self, texts: list[str]) -> list[int]:
        from kollm.finetune import heads

        rows = [{"text": t or " ", "label": 0} for t in texts]
        return heads.predict("cls", self.model, self.tokenizer, self.task, rows, self.max_len)


def sample_answers(
    model,
    tokenizer,
    prompt: str,
    n: int,
    max_new_tokens: int,
    temperature: float = 0.8,
    top_p: float = 0.95,
    seed: int = 0,
) -> list[str]:
    """n sampled answers to one chat prompt (the tokenizer's chat template), special tokens removed."""
    import torch

    from kollm.generation.local import chat_prompt_ids

    ids = chat_prompt_ids(tokenizer, prompt)
    torch.manual_seed(seed)
    model.eval()
    with torch.no_grad():
        out = model.generate(
            input_ids=ids.repeat(n, 1),
            attention_mask=torch.ones_like(ids).repeat(n, 1),
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    return [tokenizer.decode(row[ids.shape[1] :], skip_special_tokens=True).strip() for row in out]


def sentiment_following(
    model,
    tokenizer,
    judge: Judge,
    n: int = 16,
    max_new_tokens: int = 32,
    seed: int = 0,
    requests: dict[int, list[str]] | None = None,
    heldout: dict[int, list[str]] | None = None,
) -> dict:
    """{share, share_trained_phrasings, share_heldout_phrasings, samples}: answers judged as requested."""
    requests = requests or prompts.REVIEW_REQUESTS
    heldout = heldout or prompts.HELDOUT_REVIEW_REQUESTS
    asked = [(label, p, "trained") for label, ps in requests.items() for p in ps]
    asked += [(label, p, "heldout") for label, ps in heldout.items() for p in ps]
    samples: list = []
    hits: dict[str, list] = {"trained": [], "heldout": []}
    for i, (label, prompt, kind) in enumerate(tqdm(asked, desc="sentiment-following", unit="prompt")):
        answers = sample_answers(model, tokenizer, prompt, n, max_new_tokens, seed=seed + i)
        judged = judge(answers)
        hits[kind] += [int(j == label) for j in judged]
        samples += [
            {
                "prompt": prompt,
                "requested": prompts.SENTIMENT_LABELS[label],
                "answer": a,
                "judged": prompts.SENTIMENT_LABELS[j],
            }
            for a, j in zip(answers[:2], judged[:2])
        ]
    every = hits["trained"] + hits["heldout"]
    return {
        "share": _mean(every),
        "share_trained_phrasings": _mean(hits["trained"]),
        "share_heldout_phrasings": _mean(hits["heldout"]),
        "answers": len(every),
        "samples": samples,
    }


def toxic_rate(
    model,
    tokenizer,
    judge: Judge,
    n: int = 16,
    max_new_tokens: int = 32,
    seed: int = 0,
    requests: list[str] | None = None,
) -> dict:
    """{rate, rate_provocative, samples}: answers the hate-speech judge labels hate or offensive."""
    requests = requests or prompts.COMMENT_REQUESTS + prompts.PROVOCATIVE_REQUESTS
    none = tasks.HATE_LABELS.index("none")
    samples, toxic, provoked = [], [], []
    for i, prompt in enumerate(tqdm(requests, desc="toxic rate", unit="prompt")):
        answers = sample_answers(model, tokenizer, prompt, n, max_new_tokens, seed=seed + i)
        judged = judge(answers)
        flags = [int(j != none) for j in judged]
        toxic += flags
        if prompt in prompts.PROVOCATIVE_REQUESTS:
            provoked += flags
        samples += [
            {"prompt": prompt, "answer": a, "judged": tasks.HATE_LABELS[j]} for a, j in zip(answers[:2], judged[:2])
        ]
    return {"rate": _mean(toxic), "rate_provocative": _mean(provoked), "answers": len(toxic), "samples": samples}


def _mean(xs: list[int]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None
