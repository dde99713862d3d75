"""Render benchmark results into README.md and docs/workshop/*.md between `<!-- results:NAME -->` markers.

python benchmarks/render.py          # rewrite the pages from benchmarks/results/*.json
python benchmarks/render.py --check  # exit 1 if a page is stale
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # benchmarks.workshop, when run as a script
README = os.path.join(os.path.dirname(HERE), "README.md")


def pipeline_table(r: dict) -> str:
    from pipeline_tiny import GOALS  # a sibling script: benchmarks/ is on the path

    m, g = r["metrics"], GOALS.get(r["name"].removeprefix("pipeline_"), {})
    wall_goal = f"; goal ≤ {g['wall_s'] / 60:.0f} min" if "wall_s" in g else ""
    best_goal = f" (goal ≥ {g['nsmc_best_accuracy']:.2f})" if "nsmc_best_accuracy" in g else ""
    stages = " · ".join(f"{k} {v:.0f}s" for k, v in r["stages"].items())
    return "\n".join(
        [
            f"Measured on {r['machine']}, {r['date']}, with `{r['command']}`:",
            "",
            "| what | value |",
            "|---|---|",
            f"| whole pipeline, wall clock | **{r['wall_s'] / 60:.1f} min** ({r['wall_s']:.0f} s{wall_goal}) |",
            f"| per stage | {stages} (NeMo Run task start-up: {r['overhead_s']:.0f} s in all) |",
            f"| corpus | {m['docs_in']:,} documents in, {m['docs_kept']:,} kept after curation |",
            f"| model | {m['parameters'] / 1e6:.1f} M parameters, {m['tokens_seen'] / 1e6:.2f} M tokens seen, "
            f"{m['pretrain_tokens_per_s']:,.0f} tokens/s |",
            f"| pretraining loss | {m['pretrain_loss_first']:.2f} → {m['pretrain_loss_last']:.2f} |",
            f"| held-out perplexity (pretrained → aligned) | {m['heldout_perplexity_pretrained']:.1f} → "
            f"{m['heldout_perplexity_aligned']:.1f} |",
            f"| NSMC accuracy, fine-tuned ({m.get('finetune_method', 'LoRA')}) | **{m['nsmc_finetuned_accuracy']:.3f}** |",
            *(
                [
                    f"| NSMC accuracy, best kollm model (fine-tuned, zero-shot or aligned) | {m['nsmc_best_accuracy']:.3f}{best_goal} |"
                ]
                if "nsmc_best_accuracy" in m
                else []
            ),
            f"| NSMC accuracy, aligned (chat format) | {m['nsmc_aligned_accuracy']:.3f} |",
            f"| NSMC accuracy, TF-IDF + logistic regression on the whole train split | {m['nsmc_tfidf_accuracy']:.3f} |",
            *(
                [
                    f"| KLUE-NLI accuracy, fine-tuned (chance 0.333) | {m['klue_nli_finetuned_accuracy']:.3f} |",
                    f"| hate speech macro-F1, fine-tuned | {m['hate_finetuned_macro_f1']:.3f} |",
                ]
                if "klue_nli_finetuned_accuracy" in m
                else []
            ),
            f"| DPO reward accuracy on held-out pairs | {m['dpo_eval_reward_accuracy']} |",
            f"| Triton answer over HTTP | {m['served_http_answer']!r} |",
        ]
    )


def curation_table(r: dict) -> str:
    def row(what, k, d, fmt="{:,.0f}"):
        return f"| {what} | {fmt.format(r[k])} | {fmt.format(r[d])} |"

    return "\n".join(
        [
            f"Measured on {r['machine']}, {r['date']}, with `{r['command']}` (same inputs, same filters, "
            f"both on all CPUs; {r['docs_in']:,} documents; planted set: {r['planted_docs']:,} documents with "
            f"{r['planted_copies']:,} known near-copies):",
            "",
            "| | kollm (NeMo Curator stages) | datatrove |",
            "|---|---:|---:|",
            row("throughput, docs/s", "kollm_docs_per_s", "datatrove_docs_per_s"),
            row("wall clock, s", "kollm_wall_s", "datatrove_wall_s", "{:,.1f}"),
            row("peak RSS (process tree), MB", "kollm_peak_rss_mb", "datatrove_peak_rss_mb"),
            row("documents kept", "kollm_docs_kept", "datatrove_docs_kept"),
            row("near-dup recall (planted)", "kollm_near_dup_recall", "datatrove_near_dup_recall", "{:.4f}"),
            row("near-dup precision (planted)", "kollm_near_dup_precision", "datatrove_near_dup_precision", "{:.4f}"),
            "",
            f"Toxicity classifier (korean_hate_speech dev): F1 {r['toxicity_dev_f1']:.3f}.",
        ]
    )


def pretrain_cpu_table(r: dict) -> str:
    t, m = r["training"], r["model"]
    met = "met" if r["ratio"] >= r["goal_ratio"] else "not met"
    return "\n".join(
        [
            f"Measured on {r['machine']}, {r['date']}, with `{r['command']}` ({m['parameters']:,}-parameter Llama, "
            f"batch {t['batch_size']} x {t['seq_len']} tokens, {t['precision']}, {t['steps']} steps each, the first "
            f"{t['excluded_warmup_steps']} excluded; {r['data']}):",
            "",
            "| | tokens/s |",
            "|---|---:|",
            f"| kollm torch backend (`kollm.pretrain.torch_backend.train_loop`, defaults: fused chunked LM head + loss, "
            f"{r['kollm_settings']['attention']} attention) | {r['kollm_tokens_per_s']:,.0f} |",
            f"| HF `Trainer`, same model, data and settings (its default SDPA attention) | "
            f"{r['hf_trainer_tokens_per_s']:,.0f} |",
            f"| ratio (goal {r['goal_ratio']}x: {met}) | **{r['ratio']:.2f}x** |",
            "",
            "Where the difference comes from (same run):",
            "",
            "| | tokens/s |",
            "|---|---:|",
            f"| HF `Trainer` with eager attention | {r['ablation_tokens_per_s']['hf_trainer_eager_attention']:,.0f} |",
            f"| kollm loop, plain loss and SDPA (`pretrain.loss_chunk=0 pretrain.attention=sdpa`) | "
            f"{r['ablation_tokens_per_s']['kollm_plain_loss_sdpa']:,.0f} |",
        ]
    )


def finetune_methods_table(r: dict) -> str:
    lines = [
        f"Measured on {r['machine']}, {r['date']}, with `{r['command']}` (preset `{r['preset']}`'s pretrained "
        "LM; test splits: NSMC movies no training saw, the KLUE-NLI test third, hate-speech dev):",
        "",
        "| task | method | head | backend | trainable params | % | accuracy | macro-F1 | train s | peak MB | adapter MB |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in r["methods"]:
        lines.append(
            f"| {m['task']} | {m['method']} | {m['head']} | {m['backend']} | {m['trainable_params']:,} | "
            f"{m['trainable_pct']:.2f} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['train_s']:.0f} | "
            f"{m['peak_mem_mb']:.0f} | {m['adapter_mb'] if m['adapter_mb'] is not None else '–'} |"
        )
    lines += [
        "",
        "Baselines in the same run (trained on the whole train split):",
        "",
        "| task | TF-IDF + LR accuracy / macro-F1 | majority class accuracy | train rows |",
        "|---|---|---|---:|",
    ]
    for task, b in r["baselines"].items():
        f1 = b["tfidf_logreg"]["macro_f1"]
        lines.append(
            f"| {task} | {b['tfidf_logreg']['accuracy']:.3f} / {'–' if f1 is None else f'{f1:.3f}'} | "
            f"{b['majority']['accuracy']:.3f} | {b['train_examples']:,} |"
        )
    if r.get("prompting"):
        lines += [
            "",
            "The pretrained LM prompted instead (NSMC, first 500 test rows):",
            "",
            "| prompt | shots | accuracy |",
            "|---|---:|---:|",
        ]
        for p in r["prompting"]:
            lines.append(f"| `{p['prompt'].replace(chr(10), ' ⏎ ')}` | {p['shots']} | {p['accuracy']:.3f} |")
    for note in r.get("skipped", []):
        lines.append(f"\nSkipped: {note}.")
    for u in r.get("updates", []):
        again = "; ".join(
            f"{row} measured again, accuracy {c['accuracy_before']:.3f} then {c['accuracy_after']:.3f}"
            for row, c in u["measured_again"].items()
        )
        lines.append(
            f"\nRows {', '.join(u['rows'])} measured on {u['machine']}, {u['date']}, with `{u['command']}` on the same "
            f"preset's pretrained LM" + (f" ({again})." if again else ".")
        )
    return "\n".join(lines)


def eval_laptop_table(r: dict) -> str:
    g = r["goals"]
    return "\n".join(
        [
            f"Measured on {r['machine']}, {r['date']}, with `{r['command']}` (fine-tuning: {r['finetune']['method']}, "
            f"{r['finetune']['head']} head):",
            "",
            "| what | measured | goal |",
            "|---|---:|---:|",
            f"| whole pipeline, wall clock | {r['wall_s'] / 60:.1f} min | ≤ {g['wall_s'] / 60:.0f} min |",
            f"| model | {r['model_params'] / 1e6:.1f} M parameters, {r['tokens_seen'] / 1e6:.1f} M tokens | |",
            f"| NSMC accuracy ({r['nsmc_test_rows']} test reviews, movies no training saw) | **{r['nsmc_accuracy']:.3f}** | ≥ {g['nsmc_accuracy']} |",
            f"| NSMC, TF-IDF + LR on the whole train split ({r['nsmc_tfidf_train_examples']:,} reviews) | {r['nsmc_tfidf_accuracy']:.3f} | below the LM |",
            f"| KLUE-NLI accuracy (disjoint test third) | **{r['klue_nli_accuracy']:.3f}** (TF-IDF {r['klue_nli_tfidf_accuracy']:.3f}) | ≥ {g['klue_nli_accuracy']} |",
            f"| hate speech macro-F1 (dev) | {r['hate_macro_f1']:.3f} (TF-IDF {r['hate_tfidf_macro_f1']:.3f}) | |",
            f"| KLUE-STS Pearson, aligned LM zero-shot | {r['klue_sts_pearson_aligned']:.3f} | |",
        ]
    )


def alignment_table(whole: dict) -> str:
    def pct(v):
        return "–" if v is None else f"{v:.3f}"

    lines = []
    for preset, r in whole["presets"].items():
        code = f" (code of {r['code']})" if r.get("code") else ""
        if r.get("pretrain_tokens"):
            code += f", the base pretrained on {r['pretrain_tokens'] / 1e6:.1f}M tokens"
        lines += [
            f"**Preset `{preset}`**, measured on {r['machine']}, {r['date']}{code}, with `{r['command']}` "
            f"({r['answers_per_request']} sampled answers per request, judged by the finetune stage's "
            "classifiers, which no alignment step uses as a reward):",
            "",
            "| step | sentiment-following | (held-out phrasings) | toxic rate | (provocative requests) | "
            "NSMC accuracy, chat format | held-out perplexity |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for s in r["steps"]:
            lines.append(
                f"| {s['step']} | {pct(s['sentiment_following'])} "
                f"| {pct(s['sentiment_following_heldout_phrasings'])} | {pct(s['toxic_rate'])} "
                f"| {pct(s['toxic_rate_provocative'])} | {pct(s['nsmc_accuracy'])} | {s['perplexity']:.1f} |"
            )
        lines += [
            "",
            f"The fine-tuned NSMC classifier: {r['adapter_nsmc_accuracy']:.3f}. Held-out pairs: DPO reward "
            f"accuracy {pct(r['dpo_reward_accuracy_before'])} before DPO, {pct(r['dpo_reward_accuracy_after'])} "
            f"after; the reward model's accuracy {pct(r.get('reward_model_accuracy_before'))} untrained, "
            f"{pct(r.get('reward_model_accuracy'))} trained.",
            "",
        ]
    return "\n".join(lines).rstrip()


SERVING_CONFIGS = {
    "pipeline": "`transformers` pipeline, one at a time",
    "triton": "Triton, no batching",
    "triton_batching": "Triton, dynamic batching",
    "triton_batching_int8": "Triton, batching + int8",
}


def serving_table(r: dict) -> str:
    clients = sorted({row["clients"] for row in r["results"]})
    cell = {(row["config"], row["clients"]): row for row in r["results"]}
    lines = [
        f"Measured on {r['machine']}, {r['date']}, with `{r['command']}`: the {r['model']['layers']}-layer "
        f"{r['model']['hidden_size']}-wide model of `{r['model']['dir']}`, {r['max_tokens']} greedy tokens per "
        f"request, {r['seconds_per_cell']:.0f} s per cell, {r['server_threads']} torch threads per server. "
        "Generated tokens/s (p50 / p99 latency):",
        "",
        "| server | " + " | ".join(f"{c} client{'s' if c > 1 else ''}" for c in clients) + " |",
        "|---|" + "---:|" * len(clients),
    ]
    for config, label in SERVING_CONFIGS.items():
        if any((config, c) in cell for c in clients):
            lines.append(
                f"| {label} | "
                + " | ".join(
                    f"{cell[config, c]['tokens_per_s']:,.0f} ({cell[config, c]['p50_ms'] / 1000:.2f} / "
                    f"{cell[config, c]['p99_ms'] / 1000:.2f} s){' · ' + str(cell[config, c]['errors']) + ' errors' if cell[config, c]['errors'] else ''}"
                    if (config, c) in cell
                    else ""
                    for c in clients
                )
                + " |"
            )
    names = {
        "int8_batching_vs_pipeline_at_8": "batching + int8 vs the pipeline, 8 clients",
        "batching_vs_unbatched_at_8": "batching vs no batching, 8 clients",
    }
    lines += [
        "",
        " · ".join(f"{names[k]}: **{v:.1f}×** (goal ≥ {r['goals'][k]:.0f}×)" for k, v in r["summary"].items()),
        "",
        "![serving latency](docs/images/serving_latency.png)",
    ]
    return "\n".join(lines)


def serving_plot(r: dict, path: str) -> None:
    """p50 latency against clients, one line per server (log scale: they differ by orders of magnitude)."""
    sys.path.insert(0, os.path.dirname(HERE))
    from kollm.core.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for config, label in SERVING_CONFIGS.items():
        rows = sorted((row for row in r["results"] if row["config"] == config), key=lambda row: row["clients"])
        if rows:
            ax.plot(
                [row["clients"] for row in rows],
                [row["p50_ms"] / 1000 for row in rows],
                marker="o",
                label=label.replace("`", ""),
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("p50 latency (s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def quantization_table(r: dict) -> str:
    lines = [
        f"Measured on {r['machine']}, {r['date']}, with `{r['command']}` ({r['note']}): held-out "
        f"perplexity of the aligned model on {r['heldout_docs']} documents, NSMC accuracy of the fine-tuned "
        f"classifier in the same format on {r['nsmc_rows']} test reviews.",
        "",
        "| format | perplexity | NSMC accuracy | size (MB) |",
        "|---|---:|---:|---:|",
    ]
    for f in r["formats"]:
        acc = "" if f["nsmc_accuracy"] is None else f"{f['nsmc_accuracy']:.3f}"
        size = "" if f["size_mb"] is None else f"{f['size_mb']:.1f}"
        lines.append(f"| {f['format']} | {f['perplexity']:.1f} | {acc} | {size} |")
    for fmt, why in r.get("skipped", {}).items():
        lines.append(f"| {fmt} | skipped: {why} | | |")
    return "\n".join(lines)


def tokenizers_table(r: dict) -> str:
    """The text measures at the smallest and largest vocabulary, the model study, the recommendation."""
    sizes = sorted({t["vocab_size_asked"] for t in r["tokenizers"]})
    shown = [t for t in r["tokenizers"] if t["vocab_size_asked"] in (sizes[0], sizes[-1]) or t["kind"] == "char"]
    lines = [
        f"Measured on {r['machine']}, {r['date']}, with `{r['command']}`: trained on {r['train_docs']:,} curated "
        f"documents, measured on held-out NSMC reviews, KLUE-STS sentences and hate-speech dev comments "
        f"(full table: benchmarks/results/tokenizers_report.md).",
        "",
        "| kind | vocab | chars/token (NSMC · KLUE · comments) | tokens/eojeol (NSMC) | byte fallback | "
        "round trip | crosses a morpheme | train s | encode MB/s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in shown:
        rt = f"{t['roundtrip_rate']:.3f}" + (
            f" ({t['roundtrip_rate_to_syllables']:.3f} after NFC)" if "roundtrip_rate_to_syllables" in t else ""
        )
        lines.append(
            f"| {t['kind']} | {t['vocab_size']:,} | {t['chars_per_token_nsmc']:.2f} · {t['chars_per_token_klue']:.2f} · "
            f"{t['chars_per_token_comments']:.2f} | {t['tokens_per_eojeol']:.2f} | {t['byte_fallback_rate']:.4f} | "
            f"{rt} | {t['morpheme_crossing_rate']:.3f} | {t['train_s']:.1f} | {t['encode_mb_per_s']:.1f} |"
        )
    if r.get("model_study"):
        lines += [
            "",
            "The same tiny model pretrained on the same text with each tokenizer, then fine-tuned on NSMC the same way:",
            "",
            "| kind | vocab | pretraining steps (same characters) | held-out bits/char | NSMC accuracy |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {m['kind']} | {m['vocab_size']:,} | {m['pretrain_steps']} | {m['bits_per_char']:.3f} | "
            f"{m['nsmc_accuracy']:.3f} |"
            for m in r["model_study"]
        ]
    lines += ["", f"Recommended: **{r['recommended']['kind']}** ({r['recommended']['why']})."]
    return "\n".join(lines)


def architectures_table(r: dict) -> str:
    """Each architecture at one non-embedding budget: training, held-out loss, decoding at the shortest and
    longest context."""
    rows = r["architectures"]
    longest = max(i["context"] for i in rows[0]["inference"])
    lines = [
        f"Measured on {r['machine']}, {r['date']}, with `{r['command']}` ({r['precision']}, "
        f"{r['pretrain']['steps']} steps x {r['pretrain']['batch_size']} x {r['pretrain']['seq_len']} tokens each; "
        "full report: benchmarks/results/architectures_report.md).",
        "",
        f"| arch | non-embedding params (active) | train tok/s | peak MB | held-out loss | ms/token @128 | "
        f"ms/token @{longest} | cache MB @{longest} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for a in rows:
        inf = {i["context"]: i for i in a["inference"]}
        active = f" ({a['active_non_embedding_params']:,})" if "active_non_embedding_params" in a else ""
        lines.append(
            f"| {a['arch']} | {a['non_embedding_params']:,}{active} | {a['train_tokens_per_s']:,.0f} | "
            f"{a['peak_mem_mb']:,.0f} | {a['heldout_loss']:.3f} | {inf[min(inf)]['ms_per_token']} | "
            f"{inf[longest]['ms_per_token']} | {inf[longest]['cache_mb']} |"
        )
    return "\n".join(lines)


def scratch_bpe_table(r: dict) -> str:
    """The course's BPE written by hand beside HF tokenizers' trainer (Korean: it renders into course/README.md)."""
    same = "같음" if r["merges_equal"] and r["vocab_equal"] and r["ids_equal_on_first_2000_reviews"] else "다름"
    return "\n".join(
        [
            "| NSMC 리뷰 전체로 BPE 학습 | HF `tokenizers` (Rust) | `course/scratch/bpe.py` (Python) |",
            "|---|---|---|",
            f"| 학습 시간 (CPU 초, 한 코어) | {r['hf_train_cpu_s']:.1f} | {r['scratch_train_cpu_s']:.1f} |",
            "",
            f"리뷰 {r['reviews']:,}개, 어휘 {r['vocab_size']:,}개 (병합 {r['merges']}개): 병합 순서, 어휘, 토큰 id가 HF와 "
            f"{same}. 직접 만든 학습기는 HF보다 **{r['slowdown']}배** 느립니다. "
            f"측정: `{r['command']}` ({r['machine']}, {r['date']}).",
        ]
    )


RENDERERS = {
    "scratch_bpe": scratch_bpe_table,
    "pipeline_tiny": pipeline_table,
    "curation": curation_table,
    "pretrain_cpu": pretrain_cpu_table,
    "finetune_methods": finetune_methods_table,
    "eval_laptop": eval_laptop_table,
    "alignment": alignment_table,
    "serving": serving_table,
    "quantization": quantization_table,
    "tokenizers": tokenizers_table,
    "architectures": architectures_table,
}


def render(text: str) -> str:
    """Every marked block of `text` rendered: a README block from its own results file (left as it is when
    that file is absent), a workshop week from the results it quotes."""
    from benchmarks import workshop

    for name, fn in {**RENDERERS, **workshop.RENDERERS}.items():
        pattern = re.compile(rf"(<!-- results:{name} -->\n).*?(\n<!-- /results:{name} -->)", re.S)
        if not pattern.search(text):
            continue
        if name in workshop.RENDERERS:
            body = fn()
        elif (result := workshop.load(name)) is not None:
            body = fn(result)
        else:
            continue
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)
    return text


def documents() -> list[str]:
    """Every page whose numbers render from the results: the README, the course's index and the workshop weeks."""
    root = os.path.dirname(README)
    return [
        README,
        os.path.join(root, "course", "README.md"),
        *sorted(glob.glob(os.path.join(root, "docs", "workshop", "*.md"))),
    ]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page is stale")
    check = ap.parse_args(argv).check
    stale = []
    for path in documents():
        current = open(path, encoding="utf-8").read()
        fresh = render(current)
        if fresh == current:
            continue
        stale.append(os.path.relpath(path, os.path.dirname(README)))
        if not check:
            with open(path, "w", encoding="utf-8") as f:
                f.write(fresh)
    if check:
        if stale:
            print(f"stale: {', '.join(stale)}: run python benchmarks/render.py", file=sys.stderr)
            return 1
        return 0
    serving = os.path.join(HERE, "results", "serving.json")
    if os.path.exists(serving):
        serving_plot(
            json.load(open(serving, encoding="utf-8")),
            os.path.join(os.path.dirname(README), "docs", "images", "serving_latency.png"),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
