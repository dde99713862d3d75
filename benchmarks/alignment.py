"""Does alignment align? Each alignment step of a finished run, judged by classifiers it never trained on.

    .venv/bin/python benchmarks/alignment.py --run runs/tiny     # writes benchmarks/results/alignment.json

For the pretrained LM (`base`), the SFT model (`sft`) and the DPO model (`dpo`) of the run's align stage:
- sentiment-following: of sampled answers to "write a positive/negative review" (training phrasings and
  phrasings no training row used), the share the finetune stage's NSMC classifier reads as requested;
- toxic rate: of answers to comment and provocative requests, the share the finetune stage's hate-speech
  classifier labels hate or offensive;
- NSMC accuracy of the model asked in its chat format (lm-eval, the run's test rows), next to the fine-tuned
  NSMC classifier's (`adapter_nsmc_accuracy`: the task the aligned model should keep);
- held-out perplexity; DPO reward accuracy on held-out pairs before and after DPO.
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
from kollm.io import read_json, read_jsonl  # noqa: E402


def run_config(run: str):
    """The run's config, pointed at `run` wherever the folder now lives (its manifests are read through it)."""
    from kollm import config

    path = os.path.join(run, "config.json")
    if not os.path.isfile(path):
        sys.exit(f"{path}: missing; run the pipeline first (kollm run pipeline preset=... run.root=...)")
    cfg = config.from_dict(read_json(path))
    cfg.run.root, cfg.run.name = os.path.dirname(os.path.abspath(run)), os.path.basename(os.path.abspath(run))
    return cfg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/tiny", help="a run whose finetune, align and evaluate stages are done")
    ap.add_argument("--samples", type=int, default=16, help="sampled answers per request")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "alignment.json"))
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kollm import evaluation, harness
    from kollm.alignment import judge
    from kollm.finetuning import tasks

    from kollm.errors import KollmError
    from stages.base import require

    cfg = run_config(args.run)
    try:  # complete stages only, or the one-line error saying what to run
        pretrain, align, evaluate, finetune, curate = (require(cfg, s) for s in
                                                       ("pretrain", "align", "evaluate", "finetune", "curate"))
    except KollmError as e:
        sys.exit(str(e))
    finetuned = {r["task"]: r for r in read_json(finetune["outputs"]["results"])["tasks"]}
    for task in ("nsmc", "hate"):
        if task not in finetuned or finetuned[task]["head"] != "cls" or not finetuned[task]["model_dir"]:
            sys.exit(f"{args.run}: the judges are the finetune stage's cls-head models of nsmc and hate "
                     "(finetune.head=cls)")
    sentiment_judge = judge.Judge.load(finetuned["nsmc"]["model_dir"], tasks.NSMC)
    toxicity_judge = judge.Judge.load(finetuned["hate"]["model_dir"], tasks.HATE)
    report = read_json(evaluate["outputs"]["report_json"])
    folder = report["lm_eval_data"]
    heldout = [d["text"] for d in itertools.islice(read_jsonl(curate["outputs"]["heldout"]), 500)]
    steps_dirs = {"base": pretrain["outputs"]["model_dir"], "sft": align["outputs"]["sft_model_dir"],
                  "dpo": align["outputs"]["model_dir"]}
    tokenizer = AutoTokenizer.from_pretrained(steps_dirs["dpo"])
    steps = []
    for step, path in steps_dirs.items():
        print(f"[{step}] {path}", flush=True)
        model = AutoModelForCausalLM.from_pretrained(path)
        follow = judge.sentiment_following(model, tokenizer, sentiment_judge, args.samples, args.max_new_tokens)
        toxic = judge.toxic_rate(model, tokenizer, toxicity_judge, args.samples, args.max_new_tokens)
        nsmc = harness.evaluate(path, ["nsmc"], folder)["nsmc"]["acc"]
        ppl = evaluation.perplexity(model, tokenizer, heldout)["perplexity"]
        steps.append({"step": step, "sentiment_following": follow["share"],
                      "sentiment_following_heldout_phrasings": follow["share_heldout_phrasings"],
                      "toxic_rate": toxic["rate"], "toxic_rate_provocative": toxic["rate_provocative"],
                      "nsmc_accuracy": nsmc, "perplexity": round(ppl, 2),
                      "samples": follow["samples"][::4] + toxic["samples"][::4]})
        print({k: v for k, v in steps[-1].items() if k != "samples"}, flush=True)
    dpo = read_json(align["outputs"]["dpo_metrics"])
    out = {"name": "alignment", "run": os.path.relpath(args.run, REPO), "preset": cfg.preset,
           "steps": steps, "adapter_nsmc_accuracy": report["tasks"]["nsmc"]["finetuned"]["acc"],
           "dpo_reward_accuracy_before": dpo["before"].get("rewards/accuracies"),
           "dpo_reward_accuracy_after": dpo["after"].get("rewards/accuracies"),
           "alignment_counts": align["counts"], "judges": {"sentiment": "finetune stage, nsmc, cls head",
                                                          "toxicity": "finetune stage, hate, cls head"},
           "answers_per_request": args.samples}
    write_result(args.out, out, f".venv/bin/python benchmarks/alignment.py --run {os.path.relpath(args.run, REPO)}"
                                f" --samples {args.samples}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
