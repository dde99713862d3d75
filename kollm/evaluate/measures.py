"""Evaluation pieces: the baselines (majority class, TF-IDF + LR), perplexity, generations."""

from __future__ import annotations

import math

import torch


def tfidf_predictions(train_texts: list[str], train_labels: list[int], test_texts: list[str]) -> list[int]:
    """Character n-gram TF-IDF + logistic regression: the classic Korean text-classification baseline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True, max_features=200_000)
    clf = LogisticRegression(max_iter=1000, C=2.0)
    clf.fit(vec.fit_transform(train_texts), train_labels)
    return clf.predict(vec.transform(test_texts)).tolist()


def baselines(task, train_rows: list[dict], test_rows: list[dict]) -> dict:
    """Majority class and TF-IDF + LR, both trained on `train_rows` (the whole train split)."""
    from collections import Counter

    from kollm.data import metrics

    n, gold = len(task.labels), [r["label"] for r in test_rows]
    majority = Counter(r["label"] for r in train_rows).most_common(1)[0][0]
    tfidf = tfidf_predictions(
        [task.classifier_text(r) for r in train_rows],
        [r["label"] for r in train_rows],
        [task.classifier_text(r) for r in test_rows],
    )
    return {
        "majority": metrics.classification([majority] * len(gold), gold, n),
        "tfidf_logreg": metrics.classification(tfidf, gold, n),
        "train_examples": len(train_rows),
    }


@torch.no_grad()
def perplexity(model, tokenizer, texts: list[str], max_len: int = 128, batch_size: int = 32) -> dict:
    """Token-level perplexity of documents, and bits per character.

    Each document is framed as `</s> text </s>`, the way documents follow each other in the
    packed pretraining stream, so the first token is predicted in a context seen in training.
    """
    model.eval()
    nll, n_tokens, n_chars = 0.0, 0, 0
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        enc = [
            [tokenizer.eos_token_id]
            + tokenizer(t, add_special_tokens=False)["input_ids"][: max_len - 2]
            + [tokenizer.eos_token_id]
            for t in chunk
        ]
        width = max(map(len, enc))
        ids = torch.full((len(enc), width), tokenizer.pad_token_id)
        mask = torch.zeros_like(ids)
        for i, e in enumerate(enc):
            ids[i, : len(e)] = torch.tensor(e)
            mask[i, : len(e)] = 1
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target, tmask = ids[:, 1:], mask[:, 1:].bool()
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        nll += loss[tmask].sum().item()
        n_tokens += int(tmask.sum())
        n_chars += sum(len(t) + 1 for t in chunk)
    return {
        "perplexity": math.exp(nll / n_tokens),
        "bits_per_char": nll / n_chars / math.log(2),
        "tokens": n_tokens,
        "documents": len(texts),
    }


def generate(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    from kollm.generation.local import generate

    return generate(model, tokenizer, prompt, max_new_tokens)
