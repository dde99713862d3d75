"""The method table: each fine-tuning method and head on each task, against baselines and prompting, in one run.

    .venv/bin/python benchmarks/finetune_methods.py --run runs/laptop   # writes benchmarks/results/finetune_methods.json

With --update and --only, the listed rows are measured and put into the existing table, whose other rows stay as
they were measured; the update (its command, date, machine) is recorded in the table's "updates", and so is each
listed row that was already there (before and after: a row that comes out the same shows the base is the same).

Every method starts from the run's pretrained LM (its pretrain stage must be done) and is scored on the
task's test split (NSMC: movies no training saw; KLUE-NLI: the disjoint test third; hate speech: dev).
In the same run: majority class and TF-IDF + logistic regression trained on the whole train split, and the
pretrained LM prompted zero- and few-shot in several Korean phrasings (NSMC). Columns: trainable
parameters (count, %), accuracy and macro-F1, training seconds, peak memory (process RSS on CPU),
adapter size. NeMo AutoModel runs LoRA and DoRA with the lm head (its recipe) where .venv-automodel exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from benchmarks.pipeline_tiny import write_result  # noqa: E402
from kollm.core.io import read_json  # noqa: E402
from kollm.data import prompts, tasks  # noqa: E402
from kollm.evaluate import measures as evaluation  # noqa: E402
from kollm.evaluate import prompting  # noqa: E402
from kollm.finetune import trainer as train  # noqa: E402
from recipes import presets  # noqa: E402
from stages.base import outputs_of  # noqa: E402
from stages.data import DataOutputs  # noqa: E402
from stages.pretrain import PretrainOutputs  # noqa: E402

# (task, method, head, backend): every PEFT method on NSMC with the lm head, full / LoRA / DoRA with the
# classification head, AutoModel's LoRA and DoRA, and the other tasks with full fine-tuning and LoRA.
# (Full fine-tuning with the lm head is left out: it trains the LM head over the whole vocabulary on every
# position, ~5x the cls head's time here, and scored below it on the tiny preset.)
PLAN = (
    [("nsmc", m, "lm", "hf") for m in ("lora", "dora", "waveft", "prompt_tuning", "qlora", "ia3")]
    + [("nsmc", m, "cls", "hf") for m in ("full", "lora", "dora")]
    + [("nsmc", m, "lm", "automodel") for m in ("lora", "dora")]
    + [(t, m, "cls", "hf") for t in ("klue_nli", "hate") for m in ("full", "lora")]
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/laptop", help="a run whose data and pretrain stages are done")
    ap.add_argument("--preset", default="", help="fine-tuning settings from this preset (default: the run's)")
    ap.add_argument(
        "--per-class",
        type=int,
        default=1000,
        help="fine-tuning rows per label (NSMC balanced; the others capped at this x labels)",
    )
    ap.add_argument("--min-steps", type=int, default=100, help="at least this many steps per run (small tasks)")
    ap.add_argument("--nsmc-test-per-class", type=int, default=1000)
    ap.add_argument(
        "overrides",
        nargs="*",
        metavar="finetune.KEY=VALUE",
        help="dotted overrides of the preset, e.g. finetune.lora_r=8 finetune.lora_alpha=16",
    )
    ap.add_argument(
        "--only", nargs="*", default=[], help="task:method:head:backend entries to run (default: all); put it last"
    )
    ap.add_argument("--out", default=os.path.join(HERE, "results", "finetune_methods.json"))
    ap.add_argument("--update", action="store_true", help="with --only: put those rows into the existing --out table")
    args = ap.parse_args()
    unknown = [o for o in args.only if o not in {":".join(p) for p in PLAN}]
    if unknown:  # e.g. an override written after --only, which takes every word after it
        ap.error(f"--only: not rows of the table: {' '.join(unknown)} (put overrides before --only)")
    if args.update and not (args.only and os.path.exists(args.out)):
        ap.error("--update needs --only and an existing --out table")

    run_cfg = read_json(os.path.join(args.run, "config.json"))
    ft = dataclasses.replace(
        presets.build(args.preset or run_cfg["preset"], args.overrides).finetune, min_steps=args.min_steps
    )
    data = outputs_of(args.run, DataOutputs).paths()
    base = outputs_of(args.run, PretrainOutputs).model_dir
    work = os.path.join(args.run, "finetune_methods")
    plan = [p for p in PLAN if not args.only or ":".join(p) in args.only]
    automodel_ready = os.path.isfile(os.path.join(REPO, ".venv-automodel", "bin", "python"))

    rows, results = {}, {"methods": [], "baselines": {}, "skipped": []}
    for name in dict.fromkeys(p[0] for p in plan):
        task = tasks.TASKS[name]
        rows[name] = (
            tasks.load_split(task, data, "train", ft.seed, args.per_class),
            tasks.load_split(task, data, "test", 0, args.nsmc_test_per_class if name == "nsmc" else 0),
        )
        whole = tasks.load_split(task, data, "train", 0) + (
            [] if name == "nsmc" else tasks.load_split(task, data, "val", 0)
        )
        base_scores = evaluation.baselines(task, whole, rows[name][1])
        results["baselines"][name] = base_scores
        print(
            f"[baselines] {name}: TF-IDF {base_scores['tfidf_logreg']['accuracy']:.4f}, "
            f"majority {base_scores['majority']['accuracy']:.4f}",
            flush=True,
        )

    for name, method, head, backend in plan:
        if backend == "automodel" and not automodel_ready:
            results["skipped"].append(f"{name}:{method}:{head}:{backend} (no .venv-automodel; make env-automodel)")
            continue
        s = dataclasses.replace(ft, method=method, head=head, backend=backend)
        train_rows, test_rows = rows[name]
        row = train.finetune_task(
            base, tasks.TASKS[name], train_rows, test_rows, s, os.path.join(work, f"{name}-{method}-{head}-{backend}")
        )
        # the table is committed: paths relative to the repository, not this machine's
        row = {
            k: (os.path.relpath(v, REPO) if k.endswith("_dir") and v else v) for k, v in row.items() if k != "settings"
        }
        results["methods"].append(row)
        print(
            f"[{name} {method} {head} {backend}] accuracy {row['accuracy']:.4f} macro-F1 {row['macro_f1']:.4f} "
            f"trainable {row['trainable_pct']:.2f} % {row['train_s']:.0f} s {row['peak_mem_mb']:.0f} MB",
            flush=True,
        )

    if args.update:
        return update(args, results["methods"])
    if "nsmc" in rows:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base)
        results["prompting"] = prompting.study(
            {"pretrained": AutoModelForCausalLM.from_pretrained(base)},
            tokenizer,
            tasks.NSMC,
            prompts.SENTIMENT_PHRASINGS,
            rows["nsmc"][1][:500],
            rows["nsmc"][0][:200],
            (0, 4),
        )
    out = {
        "name": "finetune_methods",
        "run": os.path.relpath(args.run, REPO),
        "preset": run_cfg["preset"],
        "base_model_params": results["methods"][0]["total_params"] if results["methods"] else None,
        "nsmc_train_rows": len(rows["nsmc"][0]) if "nsmc" in rows else 0,
        "settings": dataclasses.asdict(ft),
        **results,
    }
    write_result(
        args.out,
        out,
        f".venv/bin/python benchmarks/finetune_methods.py --run {args.run} "
        f"--per-class {args.per_class} --min-steps {args.min_steps}"
        + "".join(" " + o for o in args.overrides)  # before --only, which takes every word after it
        + (" --only " + " ".join(args.only) if args.only else ""),
    )


def _key(row: dict) -> tuple[str, str, str, str]:
    return row["task"], row["method"], row["head"], "automodel" if row["backend"] == "nemo-automodel" else "hf"


def update(args: argparse.Namespace, measured: list[dict]) -> None:
    """Put the measured rows into the existing table (in the plan's order), keeping the rest as measured."""
    import datetime

    from benchmarks.pipeline_tiny import machine

    table = read_json(args.out)
    old = {_key(r): r for r in table["methods"]}
    new = {_key(r): r for r in measured}
    again = {
        ":".join(k): {"accuracy_before": old[k]["accuracy"], "accuracy_after": new[k]["accuracy"]}
        for k in new
        if k in old
    }
    for k, change in again.items():
        print(f"[{k}] measured again: accuracy {change['accuracy_before']:.4f} -> {change['accuracy_after']:.4f}")
    merged = {**old, **new}
    table["methods"] = sorted(merged.values(), key=lambda r: PLAN.index(_key(r)))
    command = (
        f".venv/bin/python benchmarks/finetune_methods.py --run {args.run} --per-class {args.per_class} "
        f"--min-steps {args.min_steps}"
        + "".join(" " + o for o in args.overrides)
        + f" --update --only {' '.join(args.only)}"
    )
    table.setdefault("updates", []).append(
        {
            "command": command,
            "rows": [":".join(k) for k in new],
            "measured_again": again,
            "machine": machine(),
            "date": datetime.date.today().isoformat(),
        }
    )
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(table, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"updated {args.out}")


if __name__ == "__main__":
    main()
