"""The laptop preset, measured: the whole pipeline (preset laptop) on this machine, then its quality.

    .venv/bin/python benchmarks/eval_laptop.py     # writes benchmarks/results/{pipeline_laptop,eval_laptop}.json

Runs `kollm run pipeline preset=laptop run.root=runs` through benchmarks/pipeline_tiny.py (kept in
runs/laptop for benchmarks/finetune_methods.py) and records the goals' figures from its report: NSMC on
movies no training saw against TF-IDF + LR on the whole train split, KLUE-NLI on the disjoint test
third, hate speech, KLUE-STS, and the wall clock against the 90-minute budget.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from benchmarks import pipeline_tiny  # noqa: E402

ROOT = os.path.join(os.path.dirname(HERE), "runs")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    rc = pipeline_tiny.main(["preset=laptop", f"run.root={os.path.relpath(ROOT)}"])
    if rc:
        return rc
    with open(os.path.join(HERE, "results", "pipeline_laptop.json")) as f:
        pipeline = json.load(f)
    with open(os.path.join(ROOT, "laptop", "evaluate", "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    t = report["tasks"]
    out = {
        "name": "eval_laptop",
        "nsmc_accuracy": t["nsmc"]["finetuned"]["acc"],
        "nsmc_tfidf_accuracy": t["nsmc"]["tfidf_logreg"]["acc"],
        "nsmc_tfidf_train_examples": t["nsmc"]["tfidf_logreg"]["train_examples"],
        "nsmc_test_rows": report["test_rows"]["nsmc"],
        "klue_nli_accuracy": t["klue_nli"]["finetuned"]["acc"],
        "klue_nli_tfidf_accuracy": t["klue_nli"]["tfidf_logreg"]["acc"],
        "hate_macro_f1": t["hate"]["finetuned"]["macro_f1"],
        "hate_tfidf_macro_f1": t["hate"]["tfidf_logreg"]["macro_f1"],
        "klue_sts_pearson_aligned": t["klue_sts"]["aligned"]["pearson"],
        "finetune": report["finetune"],
        "wall_s": pipeline["wall_s"],
        "stages": pipeline["stages"],
        "model_params": pipeline["metrics"]["parameters"],
        "tokens_seen": pipeline["metrics"]["tokens_seen"],
        "goals": {"nsmc_accuracy": 0.87, "klue_nli_accuracy": 0.55, "wall_s": 90 * 60},
    }
    pipeline_tiny.write_result(
        os.path.join(HERE, "results", "eval_laptop.json"), out, ".venv/bin/python benchmarks/eval_laptop.py"
    )
    print(json.dumps({k: v for k, v in out.items() if not isinstance(v, dict)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
