"""Two ways a model answers a classification task, with one batch format for training both.

- `lm`: the causal LM itself is the classifier. The prompt is the task's Korean instruction in
  the tokenizer's chat template; the answer is a label word. Training puts the loss on the answer
  tokens only; prediction compares the log-probabilities of the label words (no generation).
  This is what lm-evaluation-harness's multiple-choice tasks compute too.
- `cls`: `AutoModelForSequenceClassification`, a fresh linear head on the last token.

Both give `(input_ids, attention_mask, labels)` batches that `model(...).loss` trains on.
"""

from __future__ import annotations

import torch

from kollm.data.tasks import Task
from kollm.finetune.config import FinetuneHead

Head = FinetuneHead


def chat_prompt(tokenizer, content: str) -> str:
    """The user turn in the tokenizer's chat template, ready for the assistant's answer."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
    return content + "\n답: "


def prompt_ids(tokenizer, task: Task, row: dict, max_len: int, answer_len: int = 4, render=None) -> list[int]:
    """Token ids of the prompt for one row, at most max_len - answer_len long.

    Truncates the row's main text, never the instruction, the pair or the template: the answer
    slot must always be there. `render(row) -> str` replaces the task's own prompt (the prompting
    study's phrasings and few-shot prompts).
    """
    render = render or (lambda r: chat_prompt(tokenizer, task.prompt(r)))
    ids = tokenizer(render(row), add_special_tokens=False)["input_ids"]
    text = row["text"]
    while len(ids) > max_len - answer_len and text:
        text = text[: int(len(text) * 0.8)]
        ids = tokenizer(render({**row, "text": text}), add_special_tokens=False)["input_ids"]
    return ids


def answer_ids(tokenizer, word: str) -> list[int]:
    """A label word's tokens as they follow the prompt (the template's end-of-turn is not scored)."""
    return tokenizer(word, add_special_tokens=False)["input_ids"]


def _pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max(map(len, seqs))
    out = torch.full((len(seqs), width), value)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def lm_examples(tokenizer, task: Task, rows: list[dict], max_len: int) -> list[tuple[list[int], list[int]]]:
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    out = []
    for r in rows:
        p = prompt_ids(tokenizer, task, r, max_len)
        a = answer_ids(tokenizer, task.labels[r["label"]]) + eos
        out.append((p + a, [-100] * len(p) + a))
    return out


def cls_examples(tokenizer, task: Task, rows: list[dict], max_len: int) -> list[tuple[list[int], int]]:
    # ends with EOS: the head reads the last token, and pretraining saw EOS close every document
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    enc = tokenizer(
        [task.classifier_text(r) for r in rows], add_special_tokens=True, truncation=True, max_length=max_len - len(eos)
    )["input_ids"]
    return [(ids + eos, r["label"]) for ids, r in zip(enc, rows)]


def examples(head: Head, tokenizer, task: Task, rows: list[dict], max_len: int) -> list:
    return (lm_examples if head == "lm" else cls_examples)(tokenizer, task, rows, max_len)


def collate(head: Head, batch: list, pad_id: int):
    ids = _pad([x for x, _ in batch], pad_id)
    mask = _pad([[1] * len(x) for x, _ in batch], 0)
    labels = _pad([y for _, y in batch], -100) if head == "lm" else torch.tensor([y for _, y in batch])
    return ids, mask, labels


@torch.no_grad()
def label_logprobs(
    model, tokenizer, task: Task, rows: list[dict], max_len: int, batch_size: int = 64, render=None
) -> torch.Tensor:
    """[rows, labels] summed log-probabilities of each label word after each row's prompt."""
    model.eval()
    answers = [answer_ids(tokenizer, w) for w in task.labels]
    prompts = [prompt_ids(tokenizer, task, r, max_len, max(map(len, answers)), render) for r in rows]
    scores = torch.empty(len(rows), len(answers))
    for start in range(0, len(rows), batch_size):
        chunk = prompts[start : start + batch_size]
        for k, ans in enumerate(answers):
            ids = _pad([p + ans for p in chunk], tokenizer.pad_token_id)
            mask = _pad([[1] * (len(p) + len(ans)) for p in chunk], 0)
            # the last ids.shape[1] positions: prompt tuning prepends virtual tokens to the logits
            logits = model(input_ids=ids, attention_mask=mask).logits[:, -ids.shape[1] :]
            logp = torch.log_softmax(logits.float(), -1)
            for i, p in enumerate(chunk):
                pos = torch.arange(len(p) - 1, len(p) - 1 + len(ans))
                scores[start + i, k] = logp[i, pos, torch.tensor(ans)].sum()
    return scores


@torch.no_grad()
def class_logits(model, tokenizer, task: Task, rows: list[dict], max_len: int, batch_size: int = 64) -> torch.Tensor:
    model.eval()
    exs = cls_examples(tokenizer, task, rows, max_len)
    out = []
    for start in range(0, len(exs), batch_size):
        ids, mask, _ = collate("cls", exs[start : start + batch_size], tokenizer.pad_token_id)
        out.append(model(input_ids=ids, attention_mask=mask).logits.float())
    return torch.cat(out) if out else torch.empty(0, len(task.labels))


def predict(head: Head, model, tokenizer, task: Task, rows: list[dict], max_len: int) -> list[int]:
    scores = (label_logprobs if head == "lm" else class_logits)(model, tokenizer, task, rows, max_len)
    return scores.argmax(-1).tolist()
