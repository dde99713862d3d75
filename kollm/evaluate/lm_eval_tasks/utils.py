"""lm-evaluation-harness glue for kollm's Korean tasks: rows, prompts and metrics come from kollm.

The rows are JSONL files in one folder (`kollm evaluate` writes them), named to lm-eval with
`--metadata '{"kollm_data": "DIR"}'` or the KOLLM_EVAL_DATA environment variable. Prompts are the
tasks' own (kollm.data.tasks), so lm-eval and kollm score the same text; run lm_eval with
`--apply_chat_template` to wrap them in the model's chat template as kollm does.
"""

import json
import math
import os

from kollm.data import metrics, tasks


def _rows(name, **kw):
    import datasets

    folder = kw.get("kollm_data") or os.environ.get("KOLLM_EVAL_DATA")
    if not folder:
        raise ValueError(
            "kollm's lm-eval tasks read their rows from a folder: pass --metadata "
            '\'{"kollm_data": "DIR"}\' (DIR as written by `kollm evaluate`) or set KOLLM_EVAL_DATA'
        )
    path = os.path.join(folder, f"{name}.jsonl")
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {"test": datasets.Dataset.from_list(rows)}


def nsmc(**kw):
    return _rows("nsmc", **kw)


def klue_nli(**kw):
    return _rows("klue_nli", **kw)


def hate(**kw):
    return _rows("hate", **kw)


def klue_sts(**kw):
    return _rows("klue_sts", **kw)


def _text(name):
    return lambda doc: tasks.TASKS[name].prompt(doc)


nsmc_text, klue_nli_text, hate_text, klue_sts_text = (_text(n) for n in ("nsmc", "klue_nli", "hate", "klue_sts"))


def choices(doc):
    return list(tasks.TASKS[doc["task"]].labels)


def _lls(results):
    return [r[0] if isinstance(r, (tuple, list)) else r for r in results]


def classification_results(doc, results):
    lls = _lls(results)
    pred = max(range(len(lls)), key=lls.__getitem__)
    item = (pred, doc["label"], len(lls))
    out = {"acc": float(pred == doc["label"]), "macro_f1": item}
    if doc["task"] == "hate":
        out["toxic_f1"] = item
    return out


def sts_results(doc, results):
    no, yes = _lls(results)
    p_yes = 1 / (1 + math.exp(no - yes))
    return {
        "acc": float((yes > no) == bool(doc["label"])),
        "pearson": (p_yes, doc["score"]),
        "spearman": (p_yes, doc["score"]),
    }


def macro_f1(items):
    pred, gold, n = zip(*items)
    return metrics.macro_f1(list(pred), list(gold), n[0])


def toxic_f1(items):
    """Hate speech: F1 of "toxic" (hate or offensive) against none."""
    none = tasks.HATE_LABELS.index("none")
    pred, gold, _ = zip(*items)
    return metrics.f1([int(p != none) for p in pred], [int(g != none) for g in gold], 1)


def pearson(items):
    x, y = zip(*items)
    return metrics.pearson(list(x), list(y))


def spearman(items):
    x, y = zip(*items)
    return metrics.spearman(list(x), list(y))
