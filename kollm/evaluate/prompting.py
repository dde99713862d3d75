"""The prompting study (week 7): zero- and few-shot prompts in several Korean phrasings.

Each phrasing is a task variant (its own instruction and answer words); a k-shot prompt puts k
solved train examples before the question as earlier chat turns, balanced over the labels.
"""

from __future__ import annotations

import dataclasses
import random

from kollm.data import metrics
from kollm.data.tasks import Task
from kollm.finetune import heads


def shots(train_rows: list[dict], k: int, n_labels: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    by_label = {y: [r for r in train_rows if r["label"] == y] for y in range(n_labels)}
    picked = [rng.choice(by_label[i % n_labels]) for i in range(k)]
    rng.shuffle(picked)
    return picked


def renderer(tokenizer, task: Task, examples: list[dict]):
    """row -> the chat text of a k-shot prompt (k = len(examples)) for `task`."""

    def render(row: dict) -> str:
        messages = []
        for ex in examples:
            messages += [
                {"role": "user", "content": task.prompt(ex)},
                {"role": "assistant", "content": task.labels[ex["label"]]},
            ]
        messages.append({"role": "user", "content": task.prompt(row)})
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return "\n\n".join(m["content"] + ("\n답: " if m["role"] == "user" else "") for m in messages)

    return render


def study(
    models: dict,
    tokenizer,
    task: Task,
    phrasings,
    test_rows: list[dict],
    train_rows: list[dict],
    shot_counts=(0, 4),
    max_len: int = 256,
) -> list[dict]:
    """Accuracy of each model under each phrasing and shot count: one row per combination."""
    out = []
    for p, (instruction, labels) in enumerate(phrasings):
        variant = dataclasses.replace(task, instruction=instruction, labels=tuple(labels))
        for k in shot_counts:
            render = renderer(tokenizer, variant, shots(train_rows, k, len(labels), seed=p))
            for name, model in models.items():
                pred = heads.label_logprobs(model, tokenizer, variant, test_rows, max_len, render=render).argmax(-1)
                out.append(
                    {
                        "model": name,
                        "phrasing": p,
                        "prompt": instruction,
                        "shots": k,
                        "accuracy": round(metrics.accuracy(pred.tolist(), [r["label"] for r in test_rows]), 4),
                    }
                )
    return out
