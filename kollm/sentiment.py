"""NSMC sentiment as a chat task for the causal LM: the model answers 긍정 or 부정.

Prediction compares the log-probabilities of the two answers, so it needs no generation
and no classification head: the fine-tuned LM itself is the classifier.
"""

from __future__ import annotations

import random

import torch

from kollm.data.sources import nsmc_label
from kollm.prompts import SENTIMENT_INSTRUCTION, SENTIMENT_LABELS
from kollm.tokenizer import ASSISTANT, EOS


def prompt_ids(tokenizer, review: str, max_len: int) -> list[int]:
    # Truncate the review, not the template: the answer slot must always be present.
    text = tokenizer.apply_chat_template([{"role": "user", "content": SENTIMENT_INSTRUCTION + review}],
                                         add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) > max_len:
        head = tokenizer(tokenizer.apply_chat_template([{"role": "user", "content": SENTIMENT_INSTRUCTION}],
                                                       tokenize=False), add_special_tokens=False)["input_ids"]
        tail = tokenizer(EOS + ASSISTANT, add_special_tokens=False)["input_ids"]
        body = tokenizer(review, add_special_tokens=False)["input_ids"][: max_len - len(head) - len(tail) + 1]
        ids = head[:-1] + body + tail  # head ends with EOS; tail restores it
    return ids


def answer_ids(tokenizer, label: int) -> list[int]:
    return tokenizer(SENTIMENT_LABELS[label] + EOS, add_special_tokens=False)["input_ids"]


def labelled(rows, seed: int, per_class: int) -> list[dict]:
    """Balanced sample with the official NSMC labelling (rating 1-4 -> 0, 9-10 -> 1)."""
    by_label: dict[int, list[dict]] = {0: [], 1: []}
    for r in rows:
        label = nsmc_label(int(r["rating"]))
        if label is not None and r["text"].strip():
            by_label[label].append({"text": r["text"], "label": label, "rating": int(r["rating"])})
    rng = random.Random(seed)
    n = min(len(by_label[0]), len(by_label[1]))
    if per_class:
        n = min(n, per_class)
    out = rng.sample(by_label[0], n) + rng.sample(by_label[1], n)
    rng.shuffle(out)
    return out


def training_example(tokenizer, row: dict, max_len: int) -> tuple[list[int], list[int]]:
    p = prompt_ids(tokenizer, row["text"], max_len)
    a = answer_ids(tokenizer, row["label"])
    return p + a, [-100] * len(p) + a


def collate(examples: list[tuple[list[int], list[int]]], pad_id: int):
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id)
    labels = torch.full((len(examples), width), -100)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return ids, mask, labels


@torch.no_grad()
def predict(model, tokenizer, texts: list[str], max_len: int, batch_size: int = 64) -> list[float]:
    """P(긍정) for each text, from the log-probabilities of the two full answers."""
    model.eval()
    probs = []
    answers = [answer_ids(tokenizer, 0)[:-1], answer_ids(tokenizer, 1)[:-1]]
    for start in range(0, len(texts), batch_size):
        chunk = texts[start: start + batch_size]
        scores = []
        for ans in answers:
            examples = []
            for t in chunk:
                p = prompt_ids(tokenizer, t, max_len)
                examples.append((p + ans, [-100] * len(p) + ans))
            ids, mask, labels = collate(examples, tokenizer.pad_token_id)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            target = labels[:, 1:]
            logp = torch.log_softmax(logits.float(), -1)
            picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            scores.append((picked * (target != -100)).sum(-1))
        probs += torch.sigmoid(scores[1] - scores[0]).tolist()
    return probs
