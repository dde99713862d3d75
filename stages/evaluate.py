"""Evaluate on lm-evaluation-harness and against baselines: NSMC, KLUE-NLI, hate speech, KLUE-STS; perplexity; samples.

Every causal LM folder (pretrained, aligned, fine-tuned with the lm head) is scored by lm-eval with
kollm's task YAMLs (kollm/evaluate/lm_eval_tasks/); classification heads and soft prompts by kollm's scorer
(the same label log-probabilities; tests/test_harness.py checks they agree). Baselines in the same
run: majority class and TF-IDF + logistic regression trained on each task's whole train split.
`evaluate.nsmc_path=FILE` scores any JSONL with the NSMC schema instead of the run's test split.
Writes report.md, report.json, plots, and the rows lm-eval read (lm_eval_data/).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time

from kollm.config import PipelineConfig
from kollm.core import KollmError, pyplot, read_json, read_jsonl, write_json
from kollm.curation import hangul_ratio, normalize
from kollm.data import NSMC_FIELDS
from stages.align import AlignOutputs
from stages.base import Outputs, inputs, the
from stages.curate import CurateOutputs
from stages.data import DataOutputs
from stages.finetune import FinetuneOutputs
from stages.pretrain import PretrainOutputs

ZERO_SHOT = ("pretrained", "aligned")


@dataclasses.dataclass(frozen=True)
class EvaluateOutputs(Outputs):
    report_md: str  # the report to read (Markdown, with plots)
    report_json: str  # every figure in it (JSON): what the model card and the README render


def test_rows(cfg: PipelineConfig, data: dict[str, str]) -> dict[str, list[dict]]:
    from kollm.data import NSMC, TASKS, load_split, rows_from

    ev = cfg.evaluate
    rows = {
        name: load_split(TASKS[name], data, "test", 0, ev.max_examples // 2 if name == "nsmc" else 0) for name in TASKS
    }
    if ev.nsmc_path:
        rows["nsmc"] = rows_from(NSMC, read_jsonl(ev.nsmc_path, required=NSMC_FIELDS), 0, ev.max_examples // 2)
    if not rows["nsmc"]:
        raise KollmError(
            f"{ev.nsmc_path or data['nsmc_test']}: no labelled reviews (need ratings 1-4 and 9-10 in the NSMC schema)"
        )
    return rows


def score_finetuned(row: dict, task, rows: list[dict], folder: str, max_len: int) -> tuple[dict, str]:
    """A fine-tuned model's test metrics, and what scored them."""
    from transformers import AutoTokenizer

    from kollm.evaluate import harness
    from kollm.finetune import load_base, score

    if row["head"] == "lm" and row["model_dir"]:
        return harness.evaluate(row["model_dir"], [task.name], folder)[task.name], "lm-eval"
    from peft import PeftModel

    path = row["model_dir"] or row["base_dir"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = load_base(path, row["head"], len(task.labels), tokenizer.pad_token_id)
    if not row["model_dir"]:  # prompt tuning: base + soft prompt
        model = PeftModel.from_pretrained(model, row["adapter_dir"])
    scores = score(row["head"], model, tokenizer, task, rows, max_len)
    return {"acc": scores["accuracy"], "macro_f1": scores["macro_f1"]}, "kollm"


class Clock:
    """Seconds each part of the evaluation took, into `seconds` (the report says where the time goes)."""

    def __init__(self, seconds: dict):
        self.seconds, self.t = seconds, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self.t, 1)
        self.t = now


def run(cfg: PipelineConfig, out: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kollm.data import NSMC, TASKS, load_split, prompts
    from kollm.evaluate import baselines, generate, harness, perplexity, study
    from kollm.pretrain import read_history, summarize

    ev = cfg.evaluate
    data, pretrained = inputs(cfg, DataOutputs).paths(), inputs(cfg, PretrainOutputs)
    finetuned = read_json(inputs(cfg, FinetuneOutputs).results)
    rows = test_rows(cfg, data)
    folder = harness.write_rows(rows, os.path.join(out, "lm_eval_data"))
    torch.manual_seed(0)
    zero_shot_dirs = {"pretrained": pretrained.model_dir, "aligned": the(cfg, "model")}
    report: dict = {
        "tasks": {},
        "test_rows": {n: len(r) for n, r in rows.items()},
        "zero_shot_rows": {n: min(len(r), ev.zero_shot_examples or len(r)) for n, r in rows.items()},
        "lm_eval_data": folder,
        "seconds": {},
        "nsmc_path": os.path.abspath(ev.nsmc_path or data["nsmc_test"]),
        "lm_eval_command": harness.command(
            zero_shot_dirs["aligned"], list(rows), folder, limit=ev.zero_shot_examples or None
        ),
        "finetune": {k: finetuned[k] for k in ("method", "head", "backend")},
    }

    clock = Clock(report["seconds"])
    # zero-shot: every task, on lm-eval
    for name, path in zero_shot_dirs.items():
        for task, scores in harness.evaluate(path, list(rows), folder, limit=ev.zero_shot_examples or None).items():
            report["tasks"].setdefault(task, {})[name] = scores
    clock.lap("lm_eval_zero_shot")
    # fine-tuned (one model per task) and the baselines trained on each task's whole train split
    for row in finetuned["tasks"]:
        task = TASKS[row["task"]]
        scores, scorer = score_finetuned(row, task, rows[task.name], folder, cfg.finetune.max_len)
        report["tasks"][task.name]["finetuned"] = {**scores, "scored_by": scorer}
    clock.lap("finetuned")
    for name in rows:
        if name == "klue_sts":
            continue
        task = TASKS[name]
        train_rows = load_split(task, data, "train", 0, ev.baseline_examples_per_class)
        if name != "nsmc":  # the whole train file: its validation part too
            train_rows += load_split(task, data, "val", 0)
        base = baselines(task, train_rows, rows[name])
        report["tasks"][name]["majority"] = {
            "acc": base["majority"]["accuracy"],
            "macro_f1": base["majority"]["macro_f1"],
        }
        report["tasks"][name]["tfidf_logreg"] = {
            "acc": base["tfidf_logreg"]["accuracy"],
            "macro_f1": base["tfidf_logreg"]["macro_f1"],
            "train_examples": base["train_examples"],
        }
    clock.lap("baselines")

    tokenizer = AutoTokenizer.from_pretrained(zero_shot_dirs["aligned"])
    models = {name: AutoModelForCausalLM.from_pretrained(path) for name, path in zero_shot_dirs.items()}
    nsmc_train = load_split(NSMC, data, "train", 0, 200)
    report["prompting"] = study(
        models,
        tokenizer,
        NSMC,
        prompts.SENTIMENT_PHRASINGS,
        rows["nsmc"][: ev.prompt_study_examples],
        nsmc_train,
        ev.shots,
        cfg.model.max_seq_len,
    )
    clock.lap("prompting")
    heldout = [d["text"] for d in itertools.islice(read_jsonl(inputs(cfg, CurateOutputs).heldout), ev.perplexity_docs)]
    report["perplexity"] = {name: perplexity(m, tokenizer, heldout) for name, m in models.items()}
    clock.lap("perplexity")
    report["generations"] = []
    for prompt in ev.prompts:
        text = generate(models["aligned"], tokenizer, prompt, ev.max_new_tokens)
        report["generations"].append(
            {"prompt": prompt, "response": text, "hangul_share": round(hangul_ratio(normalize(text)), 3)}
        )
    clock.lap("generations")
    report["alignment"] = read_json(inputs(cfg, AlignOutputs).metrics)
    report["pretrain"] = summarize(read_history(pretrained.metrics))
    report["method_rows"] = finetuned["tasks"]

    _task_plot(report["tasks"], os.path.join(out, "tasks.png"))
    write_json(os.path.join(out, "report.json"), report)
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write(render_markdown(report, cfg, pretrained.loss_png, out))
    t = report["tasks"]
    return {
        "outputs": EvaluateOutputs(
            report_md=os.path.abspath(os.path.join(out, "report.md")),
            report_json=os.path.abspath(os.path.join(out, "report.json")),
        ),
        "counts": {f"{n}_test_rows": len(r) for n, r in rows.items()} | {"perplexity_docs": len(heldout)},
        "metrics": {
            "nsmc_finetuned_accuracy": round(t["nsmc"]["finetuned"]["acc"], 4) if "finetuned" in t["nsmc"] else None,
            "nsmc_aligned_accuracy": round(t["nsmc"]["aligned"]["acc"], 4),
            "nsmc_tfidf_accuracy": round(t["nsmc"]["tfidf_logreg"]["acc"], 4),
            "klue_nli_finetuned_accuracy": round(t["klue_nli"].get("finetuned", {}).get("acc", float("nan")), 4),
            "hate_finetuned_macro_f1": round(t["hate"].get("finetuned", {}).get("macro_f1", float("nan")), 4),
            "klue_sts_aligned_pearson": round(t["klue_sts"]["aligned"]["pearson"], 4),
            "heldout_perplexity_pretrained": round(report["perplexity"]["pretrained"]["perplexity"], 2),
            "heldout_perplexity_aligned": round(report["perplexity"]["aligned"]["perplexity"], 2),
        },
    }


COLUMNS = [
    ("finetuned", "fine-tuned"),
    ("pretrained", "pretrained, zero-shot"),
    ("aligned", "aligned, zero-shot"),
    ("tfidf_logreg", "TF-IDF + LR"),
    ("majority", "majority class"),
]


def _task_plot(results: dict, path: str) -> None:
    plt = pyplot()
    names = [n for n in results if n != "klue_sts"]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / len(COLUMNS)
    for i, (key, label) in enumerate(COLUMNS):
        values = [results[n].get(key, {}).get("acc", 0.0) for n in names]
        bars = ax.bar([j + i * width for j in range(len(names))], values, width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=6)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncols=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def render_markdown(r: dict, cfg: PipelineConfig, loss_png: str, out: str) -> str:
    from kollm.data import TASKS

    ft = r["finetune"]
    lines = [
        f"# kollm report — preset `{cfg.preset}`, run `{cfg.run.name or cfg.preset}`",
        "",
        f"Fine-tuning: method `{ft['method']}`, head `{ft['head']}`, backend `{ft['backend']}`. "
        "Zero-shot and lm-head scores from lm-evaluation-harness; baselines trained on each task's whole train split.",
        "",
        "## Tasks (test splits; accuracy / macro-F1)",
        "",
        "| task | test rows | " + " | ".join(label for _, label in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for name, res in r["tasks"].items():
        if name == "klue_sts":
            continue
        cells = [f"{_fmt(res[k]['acc'])} / {_fmt(res[k]['macro_f1'])}" if k in res else "–" for k, _ in COLUMNS]
        n, z = r["test_rows"][name], r["zero_shot_rows"][name]
        lines.append(f"| {name} | {n}{f' (zero-shot: first {z})' if z < n else ''} | " + " | ".join(cells) + " |")
    sts = r["tasks"]["klue_sts"]
    lines += [
        "",
        "![tasks](tasks.png)",
        "",
        'KLUE-STS (zero-shot, "same meaning? 예/아니오"): '
        + "; ".join(
            f"{m}: accuracy {_fmt(sts[m]['acc'])}, Pearson {_fmt(sts[m]['pearson'])}, "
            f"Spearman {_fmt(sts[m]['spearman'])}"
            for m in ZERO_SHOT
        )
        + ".",
        "",
    ]
    hate = r["tasks"]["hate"]
    lines += [
        "Toxicity F1 (hate or offensive vs none, hate-speech dev): "
        + "; ".join(
            f"{m}: {_fmt(hate[m].get('toxic_f1'))}"
            for m in ZERO_SHOT + ("finetuned",)
            if m in hate and "toxic_f1" in hate[m]
        )
        + ".",
        "",
    ]
    lines += ["Where the rows come from:", ""] + [f"- **{n}**: {TASKS[n].about}" for n in r["tasks"]] + [""]
    lines += ["Rerun the zero-shot scores with lm-eval itself:", "", f"    {r['lm_eval_command']}", ""]

    lines += [
        "## Fine-tuning runs (validation rows)",
        "",
        "| task | method | head | trainable params | % | val score | train s | peak MB | adapter MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in r["method_rows"]:
        metric = TASKS[m["task"]].metric
        lines.append(
            f"| {m['task']} | {m['method']} | {m['head']} | {m['trainable_params']:,} | {m['trainable_pct']:.2f} "
            f"| {metric} {m[metric]:.3f} | {m['train_s']:.0f} | {m['peak_mem_mb']:.0f} | {m['adapter_mb'] or '–'} |"
        )

    lines += [
        "",
        "## Prompting study (NSMC, first rows of the test split)",
        "",
        "| phrasing | shots | " + " | ".join(ZERO_SHOT) + " |",
        "|---|---|" + "---|" * len(ZERO_SHOT),
    ]
    by = {(p["phrasing"], p["shots"], p["model"]): p for p in r["prompting"]}
    for phrasing, shots in dict.fromkeys((p["phrasing"], p["shots"]) for p in r["prompting"]):
        prompt = by[(phrasing, shots, ZERO_SHOT[0])]["prompt"].replace("\n", " ⏎ ")
        lines.append(
            f"| `{prompt}` | {shots} | "
            + " | ".join(_fmt(by[(phrasing, shots, m)]["accuracy"]) for m in ZERO_SHOT)
            + " |"
        )
    if "finetuned" in r["tasks"]["nsmc"]:
        lines.append(
            f"\nFine-tuned ({ft['method']}, {ft['head']} head) on the full NSMC test split: "
            f"{_fmt(r['tasks']['nsmc']['finetuned']['acc'])}."
        )

    lines += [
        "",
        "## Held-out perplexity (curated validation-split reviews)",
        "",
        "| model | perplexity | bits/char | tokens |",
        "|---|---|---|---|",
    ]
    for name, p in r["perplexity"].items():
        lines.append(f"| {name} | {p['perplexity']:.2f} | {p['bits_per_char']:.3f} | {p['tokens']} |")
    pt = r["pretrain"]
    lines += [
        "",
        f"Pretraining: loss {pt['loss_first']} → {pt['loss_last']}, {pt['tokens_per_s']:.0f} tokens/s.",
        "",
        f"![loss]({os.path.relpath(loss_png, os.path.abspath(out))})",
        "",
        "## Alignment steps (held-out preference pairs)",
        "",
    ]
    al = r["alignment"]
    lines += ["| step | optimiser steps | train loss | held-out |", "|---|---|---|---|"]
    for step, m in al.items():
        if step == "dpo":
            b, a = m["before"], m["after"]
            held = (
                f"reward accuracy {b.get('rewards/accuracies', float('nan')):.3f} → "
                f"{a.get('rewards/accuracies', float('nan')):.3f}, margin {a.get('rewards/margins', float('nan')):.4f}"
            )
        elif step == "reward":
            held = f"pair accuracy {m['accuracy_before']:.3f} → {m['accuracy']:.3f}"
        elif step == "grpo":
            held = f"mean reward {m['reward_first_log']:.3f} (first log) → {m['reward_last_log']:.3f} (last)"
        else:
            held = ""
        lines.append(f"| {step} | {m['steps']} | {m['train_loss']:.4f} | {held} |")
    lines += ["", "## Generations (aligned model, greedy)", ""]
    for g in r["generations"]:
        lines.append(f"- **{g['prompt']}** → {g['response'] or '(empty)'}")
    return "\n".join(lines) + "\n"
