"""The Korean classification tasks kollm fine-tunes and evaluates on, one definition each.

A task knows its label words (what the causal LM answers), its Korean instruction (the prompt),
and how to read its rows from the files the data stage writes. Rows are `{"text", "label"}`
(NLI also has `"text_pair"`), `label` an index into `labels`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from kollm.core.errors import KollmError
from kollm.data.prompts import SENTIMENT_INSTRUCTION, SENTIMENT_LABELS
from kollm.data.sources import nsmc_label


@dataclass(frozen=True)
class Task:
    name: str
    labels: tuple[str, ...]  # the answer words, index = label
    instruction: str  # Korean; `{text}` (and `{text_pair}`) are filled in
    metric: str  # the headline metric: accuracy, or macro_f1 for the unbalanced hate-speech task
    about: str  # one line for reports: where train and test rows come from

    def prompt(self, row: dict) -> str:
        return self.instruction.format(text=row["text"], text_pair=row.get("text_pair", ""))

    def classifier_text(self, row: dict) -> str:
        """The input of a classification head: the text, and the pair on its own line."""
        return row["text"] if "text_pair" not in row else f"{row['text']}\n{row['text_pair']}"


NSMC = Task(
    "nsmc",
    tuple(SENTIMENT_LABELS),
    SENTIMENT_INSTRUCTION + "{text}",
    "accuracy",
    "NSMC reviews, official labels (1-4 negative, 9-10 positive), balanced; train/test split by movie",
)
KLUE_NLI = Task(
    "klue_nli",
    ("함의", "중립", "모순"),
    "다음 두 문장의 관계를 함의, 중립, 모순 중 하나로 답하세요.\n전제: {text}\n가설: {text_pair}",
    "accuracy",
    "KLUE-NLI v1.1 dev only (no train set offline): premises hashed into a fixed 2/3 fine-tuning "
    "part and a disjoint 1/3 test part; scores are on that 1/3 and are not official KLUE dev scores",
)
HATE = Task(
    "hate",
    ("혐오", "공격", "없음"),
    "다음 댓글이 혐오 표현인지, 공격적인지, 문제가 없는지 답하세요.\n댓글: {text}",
    "macro_f1",
    "korean-hate-speech labelled train (fine-tuning) and dev (test); labels hate/offensive/none",
)
# evaluation only (KLUE has no STS train set offline): binary "same meaning?" and, from P(예), Pearson/Spearman
KLUE_STS = Task(
    "klue_sts",
    ("아니오", "예"),
    "다음 두 문장의 의미가 같습니까? 예 또는 아니오로 답하세요.\n문장 1: {text}\n문장 2: {text_pair}",
    "pearson",
    "KLUE-STS v1.1 dev (519 pairs); binary label >= 3.0, and the 0-5 score for Pearson/Spearman",
)
TASKS: dict[str, Task] = {t.name: t for t in (NSMC, KLUE_NLI, HATE, KLUE_STS)}
HATE_LABELS = ("hate", "offensive", "none")
NLI_LABELS = ("entailment", "neutral", "contradiction")


def by_name(name: str) -> Task:
    if name not in TASKS:
        raise KollmError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[name]


def rows_from(task: Task, records, seed: int = 0, per_class: int = 0, balance: bool = True) -> list[dict]:
    """Task rows from the data stage's JSONL records. NSMC is balanced (its official labelling is;
    balance=False keeps every row, e.g. a user's own file); the other tasks keep their label mix.
    per_class > 0 caps the rows at per_class x labels."""
    rows = [r for r in map(lambda rec: _row(task, rec), records) if r is not None]
    if task.name == "nsmc" and balance:
        return balanced(rows, len(task.labels), seed, per_class)
    if per_class and len(rows) > per_class * len(task.labels):
        rows = random.Random(seed).sample(rows, per_class * len(task.labels))
    return rows


def _row(task: Task, rec: dict) -> dict | None:
    if isinstance(rec.get("label"), int) and "text" in rec:  # already a task row (e.g. a user's --data file)
        if not 0 <= rec["label"] < len(task.labels):
            raise KollmError(f"task {task.name}: label {rec['label']} is not in 0..{len(task.labels) - 1}")
        if "text_pair" in task.instruction and "text_pair" not in rec:
            raise KollmError(f"task {task.name}: a row lacks the column 'text_pair'")
        return {k: rec[k] for k in ("text", "text_pair", "label", "score") if k in rec}
    try:
        if task.name == "nsmc":
            label = nsmc_label(int(rec["rating"]))
            text = rec["text"]
            return {"text": text, "label": label} if label is not None and text.strip() else None
        if task.name == "klue_nli":
            return {
                "text": rec["premise"],
                "text_pair": rec["hypothesis"],
                "label": NLI_LABELS.index(rec["gold_label"]),
            }
        if task.name == "klue_sts":
            return {
                "text": rec["sentence1"],
                "text_pair": rec["sentence2"],
                "label": int(rec["binary_label"]),
                "score": float(rec["score"]),
            }
        return {"text": rec["text"], "label": HATE_LABELS.index(rec["hate"])} if rec["text"].strip() else None
    except KeyError as e:
        raise KollmError(
            f"task {task.name}: a row lacks the column {e.args[0]!r} (has: {', '.join(sorted(rec))})"
        ) from None
    except ValueError:
        raise KollmError(f"task {task.name}: a row has an unknown label in {rec}") from None


def balanced(rows: list[dict], n_labels: int, seed: int, per_class: int = 0) -> list[dict]:
    by_label: dict[int, list[dict]] = {k: [] for k in range(n_labels)}
    for r in rows:
        by_label[r["label"]].append(r)
    rng = random.Random(seed)
    n = min(len(v) for v in by_label.values())
    if per_class:
        n = min(n, per_class)
    out = [r for k in range(n_labels) for r in rng.sample(by_label[k], n)]
    rng.shuffle(out)
    return out


# The data stage's files (its manifest's outputs) behind each task's train and test split.
FILES = {
    "nsmc": {"train": "nsmc_train", "val": "nsmc_val", "test": "nsmc_test"},
    "klue_nli": {"train": "klue_nli_train", "test": "klue_nli_test"},
    "hate": {"train": "hate_train", "test": "hate_dev"},
    "klue_sts": {"test": "klue_sts"},
}
VAL_FRACTION = 1 / 6  # of the train file, for tasks without a validation file


def _in_val(task: Task, rec: dict) -> bool:
    key = rec.get("premise") or rec.get("text", "")  # NLI: all three hypotheses of a premise together
    digest = hashlib.sha1(f"{task.name}-val-{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < VAL_FRACTION


def load_split(task: Task, files: dict[str, str], split: str, seed: int = 0, per_class: int = 0) -> list[dict]:
    """Rows of `split` (train, val, test) from the data stage's files. Tasks without a validation
    file (KLUE-NLI, hate speech) keep a fixed hashed 1/6 of their train file for it."""
    from kollm.core.io import read_jsonl

    names = FILES[task.name]
    records = read_jsonl(files[names[split] if split in names else names["train"]])
    if split != "test" and "val" not in names:
        records = (r for r in records if _in_val(task, r) == (split == "val"))
    return rows_from(task, records, seed, per_class)
