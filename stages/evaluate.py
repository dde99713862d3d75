"""Evaluate: NSMC accuracy of the LMs vs a TF-IDF baseline, held-out perplexity, generations.

`evaluate.nsmc_path=FILE` evaluates any JSONL with the NSMC schema instead of the run's
test split. Writes report.md, report.json and plots.
"""

from __future__ import annotations

import itertools
import os

from kollm.config import PipelineConfig
from kollm.curation.korean import hangul_ratio, normalize
from kollm.data.sources import NSMC_FIELDS
from kollm.errors import KollmError
from kollm.io import read_json, read_jsonl, write_json
from kollm.plotting import pyplot
from stages.base import inputs


def _bar_plot(values: dict[str, float], path: str, title: str, ylabel: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    bars = ax.bar(list(values), list(values.values()), color=["#4c72b0", "#dd8452", "#55a868", "#c44e52"][: len(values)])
    ax.bar_label(bars, fmt="%.3f")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(cfg: PipelineConfig, out: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kollm import evaluation, sentiment
    from kollm.training import read_history, summarize

    ev = cfg.evaluate
    data, pretrained, aligned = inputs(cfg, "data"), inputs(cfg, "pretrain"), inputs(cfg, "align")
    test_path = ev.nsmc_path or data["nsmc_test"]
    test_rows = sentiment.labelled(read_jsonl(test_path, required=NSMC_FIELDS), 0, ev.max_examples // 2)
    if not test_rows:
        raise KollmError(f"{test_path}: no labelled reviews (need ratings 1-4 and 9-10 in the NSMC schema)")
    train_rows = sentiment.labelled(read_jsonl(data["nsmc_train"]), 0, ev.baseline_examples_per_class)
    texts = [r["text"] for r in test_rows]
    torch.manual_seed(0)

    models = {"pretrained": pretrained["model_dir"], "finetuned": inputs(cfg, "finetune")["model_dir"],
              "aligned": aligned["model_dir"]}
    tokenizer = AutoTokenizer.from_pretrained(models["aligned"])
    heldout = [d["text"] for d in itertools.islice(read_jsonl(inputs(cfg, "curate")["heldout"]), ev.perplexity_docs)]
    results: dict = {"nsmc": {"path": os.path.abspath(test_path), "examples": len(test_rows)}, "perplexity": {},
                     "generations": []}
    for name, path in models.items():
        model = AutoModelForCausalLM.from_pretrained(path)
        results["perplexity"][name] = evaluation.perplexity(model, tokenizer, heldout)
        if name != "pretrained":
            probs = sentiment.predict(model, tokenizer, texts, ev.max_len)
            results["nsmc"][f"{name}_accuracy"] = evaluation.accuracy(probs, test_rows)
        if name == "aligned":
            for prompt in ev.prompts:
                text = evaluation.generate(model, tokenizer, prompt, ev.max_new_tokens)
                results["generations"].append({"prompt": prompt, "response": text,
                                               "hangul_share": round(hangul_ratio(normalize(text)), 3)})
    results["nsmc"]["tfidf_logreg_accuracy"] = evaluation.tfidf_baseline(train_rows, test_rows)["accuracy"]
    results["nsmc"]["baseline_train_examples"] = len(train_rows)
    results["dpo"] = read_json(aligned["dpo_metrics"])
    results["pretrain"] = summarize(read_history(pretrained["metrics"]))

    acc = {"LoRA LM": results["nsmc"]["finetuned_accuracy"], "aligned LM": results["nsmc"]["aligned_accuracy"],
           "TF-IDF+LR": results["nsmc"]["tfidf_logreg_accuracy"]}
    _bar_plot(acc, os.path.join(out, "nsmc_accuracy.png"), f"NSMC accuracy (n={len(test_rows)})", "accuracy")
    loss_png = pretrained["loss_png"]
    write_json(os.path.join(out, "report.json"), results)
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write(render_markdown(results, cfg, loss_png, out))
    return {
        "outputs": {"report_md": os.path.abspath(os.path.join(out, "report.md")),
                    "report_json": os.path.abspath(os.path.join(out, "report.json"))},
        "counts": {"nsmc_examples": len(test_rows), "perplexity_docs": len(heldout)},
        "metrics": {"nsmc_finetuned_accuracy": round(acc["LoRA LM"], 4),
                    "nsmc_aligned_accuracy": round(acc["aligned LM"], 4),
                    "nsmc_tfidf_accuracy": round(acc["TF-IDF+LR"], 4),
                    "heldout_perplexity_pretrained": round(results["perplexity"]["pretrained"]["perplexity"], 2),
                    "heldout_perplexity_aligned": round(results["perplexity"]["aligned"]["perplexity"], 2)},
    }


def _shown(path: str, run_dir: str) -> str:
    """Paths inside the run directory are shown relative to it (reports get copied around)."""
    rel = os.path.relpath(path, os.path.abspath(run_dir))
    return rel if not rel.startswith("..") else path


def render_markdown(r: dict, cfg: PipelineConfig, loss_png: str, out: str) -> str:
    n = r["nsmc"]
    lines = [f"# kollm report — preset `{cfg.preset}`, run `{cfg.run.name or cfg.preset}`", "",
             "## NSMC sentiment (balanced, official labelling: 1–4 negative, 9–10 positive)", "",
             f"Test file: `{_shown(n['path'], cfg.run_dir)}` ({n['examples']} reviews)", "",
             "| model | accuracy |", "|---|---|",
             f"| kollm LM + LoRA (finetune) | {n['finetuned_accuracy']:.4f} |",
             f"| kollm LM after SFT + DPO (align) | {n['aligned_accuracy']:.4f} |",
             f"| TF-IDF char 1–3-grams + logistic regression ({n['baseline_train_examples']} train reviews) | {n['tfidf_logreg_accuracy']:.4f} |",
             "", "![accuracy](nsmc_accuracy.png)", "",
             "## Held-out perplexity (curated validation-split reviews)", "",
             "| model | perplexity | bits/char | tokens |", "|---|---|---|---|"]
    for name, p in r["perplexity"].items():
        lines.append(f"| {name} | {p['perplexity']:.2f} | {p['bits_per_char']:.3f} | {p['tokens']} |")
    pt = r["pretrain"]
    lines += ["", f"Pretraining: loss {pt['loss_first']} → {pt['loss_last']}, {pt['tokens_per_s']:.0f} tokens/s.", "",
              f"![loss]({os.path.relpath(loss_png, os.path.abspath(out))})", "",
              "## DPO (held-out preference pairs)", "", "| | loss | reward accuracy | margin |", "|---|---|---|---|"]
    for when in ("before", "after"):
        m = r["dpo"][when]
        lines.append(f"| {when} DPO | {m.get('loss', float('nan')):.4f} | {m.get('rewards/accuracies', float('nan')):.3f} "
                     f"| {m.get('rewards/margins', float('nan')):.4f} |")
    lines += ["", "## Generations (aligned model, greedy)", ""]
    for g in r["generations"]:
        lines.append(f"- **{g['prompt']}** → {g['response'] or '(empty)'}")
    return "\n".join(lines) + "\n"
