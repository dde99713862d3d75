"""Does alignment align? Each alignment step of a finished run, judged by classifiers it never trained on.

    .venv/bin/python benchmarks/alignment.py --run runs/tiny     # writes benchmarks/results/alignment.json

For the pretrained LM (`base`) and each policy of the run's align stage (`sft`, `dpo`, `grpo`):
- sentiment-following: of sampled answers to "write a positive/negative review" (training phrasings and
  phrasings no training row used), the share the finetune stage's NSMC classifier reads as requested;
- toxic rate: of answers to comment and provocative requests, the share the finetune stage's hate-speech
  classifier labels hate or offensive;
- NSMC accuracy of the model asked in its chat format (lm-eval, the run's test rows), next to the fine-tuned
  NSMC classifier's (`adapter_nsmc_accuracy`: the task the aligned model should keep);
- held-out perplexity; DPO reward accuracy on held-out pairs before and after DPO; the reward model's
  accuracy on those pairs.
The judges (fine-tuned classifiers) are used by no alignment step as a reward. Samples go into the JSON.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from benchmarks.pipeline_tiny import write_result  # noqa: E402
from kollm.core.io import read_json, read_jsonl  # noqa: E402


def run_config(run: str):
    """The run's config, pointed at `run` wherever the folder now lives (its manifests are read through it)."""
    from kollm import config

    path = os.path.join(run, "config.json")
    if not os.path.isfile(path):
        sys.exit(f"{path}: missing; run the pipeline first (kollm run pipeline preset=... run.root=...)")
    cfg = config.from_dict(read_json(path))
    cfg.run.root, cfg.run.name = os.path.dirname(os.path.abspath(run)), os.path.basename(os.path.abspath(run))
    return cfg


def _good_and_bad(follow: list[dict], toxic: list[dict], n: int = 3) -> list[dict]:
    """A few answers the judge read as requested and a few it did not; clean and toxic ones likewise."""
    out = []
    for rows, ok in ((follow, lambda r: r["judged"] == r["requested"]), (toxic, lambda r: r["judged"] == "none")):
        out += [{**r, "verdict": "good"} for r in rows if ok(r)][:n] + [
            {**r, "verdict": "bad"} for r in rows if not ok(r)
        ][:n]
    return out


def write_report(path: str, whole: dict) -> None:
    """The markdown report beside alignment.json: the figures per preset, and samples good and bad."""
    from benchmarks.render import alignment_table

    lines = ["# Does alignment align? (benchmarks/alignment.py)", "", alignment_table(whole), ""]
    for preset, r in whole["presets"].items():
        lines += [f"## Samples, preset `{preset}`", ""]
        for s in r["steps"]:
            lines += [f"### {s['step']}", "", "| verdict | request | answer | judged |", "|---|---|---|---|"]
            for x in s["samples"]:
                asked = x["prompt"] + (f" ({x['requested']})" if "requested" in x else "")
                answer = x["answer"].replace("|", "\\|").replace("\n", " ") or "(empty)"
                lines.append(f"| {x.get('verdict', '')} | {asked} | {answer} | {x['judged']} |")
            lines.append("")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def write_preset(path: str, preset: str, result: dict, command: str) -> None:
    """alignment.json holds one entry per preset (`presets`): this run's replaces its preset's."""
    import datetime

    from benchmarks.pipeline_tiny import machine

    whole = read_json(path) if os.path.exists(path) else {}
    presets = whole.get("presets", {})
    import subprocess

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    presets[preset] = {
        **result,
        "command": command,
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "code": commit,
    }
    order = ["tiny", "laptop"]
    presets = dict(sorted(presets.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    write_result(path, {"name": "alignment", "presets": presets}, "one command per preset: presets.<name>.command")
    write_report(os.path.splitext(path)[0] + "_report.md", read_json(path))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/tiny", help="a run whose finetune, align and evaluate stages are done")
    ap.add_argument("--samples", type=int, default=16, help="sampled answers per request")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "alignment.json"))
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kollm.align import judge
    from kollm.core.errors import KollmError
    from kollm.data import tasks
    from kollm.evaluate import harness
    from kollm.evaluate import measures as evaluation
    from stages.align import AlignOutputs
    from stages.base import outputs_of
    from stages.curate import CurateOutputs
    from stages.evaluate import EvaluateOutputs
    from stages.finetune import FinetuneOutputs
    from stages.pretrain import PretrainOutputs

    cfg = run_config(args.run)
    try:  # complete stages only, or the one-line error saying what to run
        pretrain = outputs_of(args.run, PretrainOutputs)
        align = outputs_of(args.run, AlignOutputs)
        evaluate = outputs_of(args.run, EvaluateOutputs)
        finetune = outputs_of(args.run, FinetuneOutputs)
        curate = outputs_of(args.run, CurateOutputs)
    except KollmError as e:
        sys.exit(str(e))
    finetuned = {r["task"]: r for r in read_json(finetune.results)["tasks"]}
    for task in ("nsmc", "hate"):
        if task not in finetuned or finetuned[task]["head"] != "cls" or not finetuned[task]["model_dir"]:
            sys.exit(
                f"{args.run}: the judges are the finetune stage's cls-head models of nsmc and hate (finetune.head=cls)"
            )
    sentiment_judge = judge.Judge.load(finetuned["nsmc"]["model_dir"], tasks.NSMC)
    toxicity_judge = judge.Judge.load(finetuned["hate"]["model_dir"], tasks.HATE)
    report = read_json(evaluate.report_json)
    folder = report["lm_eval_data"]
    heldout = [d["text"] for d in itertools.islice(read_jsonl(curate.heldout), 500)]
    trained = read_json(align.metrics)
    steps_dirs = {
        "base": pretrain.model_dir,
        **{s: trained[s]["model_dir"] for s in ("sft", "dpo", "grpo") if s in trained},
    }
    tokenizer = AutoTokenizer.from_pretrained(align.model_dir)
    steps = []
    for step, path in steps_dirs.items():
        print(f"[{step}] {path}", flush=True)
        model = AutoModelForCausalLM.from_pretrained(path)
        follow = judge.sentiment_following(model, tokenizer, sentiment_judge, args.samples, args.max_new_tokens)
        toxic = judge.toxic_rate(model, tokenizer, toxicity_judge, args.samples, args.max_new_tokens)
        nsmc = harness.evaluate(path, ["nsmc"], folder)["nsmc"]["acc"]
        ppl = evaluation.perplexity(model, tokenizer, heldout)["perplexity"]
        steps.append(
            {
                "step": step,
                "sentiment_following": follow["share"],
                "sentiment_following_heldout_phrasings": follow["share_heldout_phrasings"],
                "toxic_rate": toxic["rate"],
                "toxic_rate_provocative": toxic["rate_provocative"],
                "nsmc_accuracy": nsmc,
                "perplexity": round(ppl, 2),
                "samples": _good_and_bad(follow["samples"], toxic["samples"]),
            }
        )
        print({k: v for k, v in steps[-1].items() if k != "samples"}, flush=True)
    dpo = trained.get("dpo", {"before": {}, "after": {}})
    out = {
        "name": "alignment",
        "run": os.path.relpath(args.run, REPO),
        "preset": cfg.preset,
        "pretrain_tokens": pretrain["counts"].get("tokens_seen"),  # the base every step starts from
        "steps": steps,
        "adapter_nsmc_accuracy": report["tasks"]["nsmc"]["finetuned"]["acc"],
        "dpo_reward_accuracy_before": dpo["before"].get("rewards/accuracies"),
        "dpo_reward_accuracy_after": dpo["after"].get("rewards/accuracies"),
        "reward_model_accuracy_before": trained.get("reward", {}).get("accuracy_before"),
        "reward_model_accuracy": trained.get("reward", {}).get("accuracy"),
        "grpo_rewards": {k: v for k, v in trained.get("grpo", {}).items() if k.startswith("reward_")},
        "alignment_counts": align["counts"],
        "alignment_config": align["config"]["align"],
        "judges": {"sentiment": "finetune stage, nsmc, cls head", "toxicity": "finetune stage, hate, cls head"},
        "answers_per_request": args.samples,
    }
    command = (
        f".venv/bin/python benchmarks/alignment.py --run {os.path.relpath(args.run, REPO)} --samples {args.samples}"
    )
    write_preset(args.out, cfg.preset, out, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
