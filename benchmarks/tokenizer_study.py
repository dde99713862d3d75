"""Korean tokenizers compared, on the text and on the model.

    .venv/bin/python benchmarks/tokenizer_study.py --run runs/laptop
    .venv/bin/python benchmarks/tokenizer_study.py --run runs/laptop --kinds --model-study bpe_metaspace spm_unigram jamo_bpe char

writes benchmarks/results/tokenizers.json and benchmarks/results/tokenizers_report.md.

Text: every kind (kollm/tokenization/__init__.py) at each vocabulary size, trained on the first `--train-docs`
documents of a finished run's curated corpus (each training in its own process: time and peak RSS),
measured on text none of them trained on: the run's held-out reviews (NSMC, informal), KLUE-STS
sentences (formal) and hate-speech dev comments (web comments): characters per token, tokens per
eojeol, byte-fallback/UNK rate, exact round trips, the share of tokens crossing a Kiwi morpheme
boundary, and encode throughput (a batch, every core).

Model (--model-study KIND ...): for each kind, the tiny preset's model pretrained on the same
*text* (steps scaled by the kind's tokens per character, so each model reads the same characters),
then fine-tuned on NSMC the same way; held-out bits per character (the measure that does not
depend on the tokenizer) and NSMC test accuracy. Each kind's run shares the base run's data and
curate stages.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from benchmarks.pipeline_tiny import write_result  # noqa: E402
from kollm.core.io import read_json, read_jsonl  # noqa: E402
from stages.base import load_manifest, outputs_of, require_manifest  # noqa: E402
from stages.curate import CurateOutputs  # noqa: E402
from stages.data import DataOutputs  # noqa: E402
from stages.finetune import FinetuneOutputs  # noqa: E402
from stages.pretrain import PretrainOutputs  # noqa: E402

VOCABS = [8000, 16000, 32000, 64000]
# published anchors; their tokenizer files are not reachable offline, so no measured figure stands beside them
ANCHORS = [
    {"name": "Polyglot-Ko", "vocab_size": "~30k", "method": "BPE with morpheme-aware (MeCab) pre-tokenization"},
    {"name": "EXAONE", "vocab_size": "~102k", "method": "MeCab pre-tokenization + byte-level BPE"},
    {"name": "Llama-2-ko", "vocab_size": "~46k", "method": "Llama 2's SentencePiece extended with Korean pieces"},
]


def eval_sets(run: str, data_dir: str, n: int = 2000) -> dict[str, list[str]]:
    from kollm.data import sources

    nsmc = [d["text"] for d in itertools.islice(read_jsonl(outputs_of(run, CurateOutputs).heldout), n)]
    klue = [s for r in sources.iter_klue_sts(data_dir) for s in (r["sentence1"], r["sentence2"])][:n]
    comments = [r["text"] for r in sources.iter_hate_labeled(data_dir, "dev")][:n]
    return {"nsmc": nsmc, "klue": klue, "comments": comments}


def train_one(kind: str, vocab: int, corpus: str, out: str, segmented: str) -> None:
    """In a child process: train, save, print time and peak RSS (MB, the whole process)."""
    from kollm import tokenization as tokenizer
    from kollm.tokenization import kiwi

    with open(corpus, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f]
    t0 = time.perf_counter()
    if kind == "kiwi_bpe":  # Kiwi's segmentation is done once for every size (its time is added by the parent)
        with open(segmented, encoding="utf-8") as f:
            tok = tokenizer.as_hf(kiwi.train_segmented((line.rstrip("\n") for line in f), vocab))
    else:
        tok = tokenizer.train(kind, texts, vocab)
    train_s = time.perf_counter() - t0
    tok.save_pretrained(out)
    print(
        json.dumps(
            {
                "train_s": round(train_s, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


def measure(tok, kind: str, sets: dict[str, list[str]], cuts: list[set[int]]) -> dict:
    from kollm import tokenization as kt
    from kollm.tokenization import jamo

    undo = jamo.to_syllables if kind == "jamo_bpe" else None
    every = [t for texts in sets.values() for t in texts]
    row = {}
    for name, texts in sets.items():
        m = kt.text_measures(tok, texts)
        row[f"chars_per_token_{name}"], row[f"tokens_per_eojeol_{name}"] = (
            round(m["chars_per_token"], 3),
            round(m["tokens_per_eojeol"], 3),
        )
    row["chars_per_token"], row["tokens_per_eojeol"] = row["chars_per_token_nsmc"], row["tokens_per_eojeol_nsmc"]
    m = kt.text_measures(tok, every, undo)
    row["byte_fallback_rate"], row["unk_rate"] = round(m["byte_fallback_rate"], 5), round(m["unk_rate"], 5)
    row["roundtrip_rate"] = round(m["roundtrip_rate"], 4)
    if undo:
        row["roundtrip_rate_to_syllables"] = round(m["roundtrip_rate_undone"], 4)
    spans = [
        tok(t, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        for t in sets["nsmc"][: len(cuts)]
    ]
    crossing = sum(any(a < x < b for x in c) for s, c in zip(spans, cuts) for a, b in s)
    row["morpheme_crossing_rate"] = round(crossing / max(1, sum(map(len, spans))), 4)
    batch = every * max(1, 4_000_000 // max(1, sum(len(t.encode()) for t in every)))
    t0 = time.perf_counter()
    tok.backend_tokenizer.encode_batch_fast(batch, add_special_tokens=False)  # the Rust encoder, on every core
    row["encode_mb_per_s"] = round(sum(len(t.encode()) for t in batch) / 2**20 / (time.perf_counter() - t0), 2)
    return row


def text_study(args, sets) -> list[dict]:
    from kiwipiepy import Kiwi
    from transformers import AutoTokenizer

    from kollm.tokenization import kiwi

    work = os.path.join(args.run, "tokenizer_study")
    os.makedirs(work, exist_ok=True)
    corpus = os.path.join(work, "train.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        for d in itertools.islice(read_jsonl(outputs_of(args.run, CurateOutputs).corpus), args.train_docs):
            f.write(d["text"].replace("\n", " ") + "\n")
    segmented, kiwi_s = os.path.join(work, "train_kiwi.txt"), 0.0
    if "kiwi_bpe" in args.kinds:
        t0 = time.perf_counter()
        with open(corpus, encoding="utf-8") as f, open(segmented, "w", encoding="utf-8") as out:
            out.writelines(s + "\n" for s in kiwi.segment(line.rstrip("\n") for line in f))
        kiwi_s = time.perf_counter() - t0
        print(f"kiwi segmentation of {args.train_docs} documents: {kiwi_s:.0f} s", flush=True)
    sample = sets["nsmc"][:500]
    cuts = [set(kiwi.cut_points(t, toks)) for t, toks in zip(sample, Kiwi().tokenize(sample))]
    rows = []
    for kind in args.kinds:
        for vocab in [max(args.vocabs)] if kind == "char" else args.vocabs:  # char: every character, one size
            out = os.path.join(work, f"{kind}-{vocab}")
            proc = subprocess.run(
                [sys.executable, __file__, "--train-one", kind, str(vocab), corpus, out, segmented],
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            if proc.returncode:
                raise SystemExit(f"{kind} {vocab}: {proc.stderr[-2000:]}")
            trained = json.loads(proc.stdout.strip().splitlines()[-1])
            tok = AutoTokenizer.from_pretrained(out)
            row = {
                "kind": kind,
                "vocab_size": len(tok),
                "vocab_size_asked": vocab,
                "train_s": round(trained["train_s"] + (kiwi_s if kind == "kiwi_bpe" else 0), 1),
                "peak_rss_mb": trained["peak_rss_mb"],
                **measure(tok, kind, sets, cuts),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def model_study(args) -> list[dict]:
    """Each kind's tokenizer -> the tiny preset's pretraining on the same characters -> NSMC fine-tuning."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from kollm.data import tasks
    from kollm.evaluate import measures as evaluation
    from kollm.finetune import trainer as train
    from recipes import presets
    from stages import by_name
    from stages.runner import run_stage

    base = os.path.abspath(args.run)
    # every kind is measured on the same held-out reviews (bits/char) and NSMC test rows (accuracy)
    curated = outputs_of(base, CurateOutputs)
    heldout = [d["text"] for d in itertools.islice(read_jsonl(curated.heldout), 3000) if len(d["text"]) <= 200][:1000]
    task = tasks.by_name("nsmc")
    test = tasks.load_split(task, outputs_of(base, DataOutputs).paths(), "test", 0, args.test_per_class)
    rows, chars_per_step = [], None
    for kind in args.model_study:
        name = f"tokstudy-{kind}"
        run_dir = os.path.join(os.path.dirname(base), name)
        os.makedirs(run_dir, exist_ok=True)
        for stage in ("data", "curate"):  # the same corpus and splits for every kind
            link = os.path.join(run_dir, stage)
            if not os.path.exists(link):
                os.symlink(os.path.join(base, stage), link)
        over = [
            f"tokenizer.kind={kind}",
            f"run.root={os.path.dirname(base)}",
            f"run.name={name}",
            "finetune.tasks=nsmc",
            *args.overrides,
        ]
        cfg = presets.build(args.preset, over)
        tok_manifest = run_stage(by_name("tokenizer"), cfg)
        cpt = tok_manifest["metrics"]["heldout_chars_per_token"]
        tokens_per_step = cfg.pretrain.batch_size * cfg.pretrain.seq_len
        if chars_per_step is None:  # the first kind sets the text budget
            chars_per_step, base_steps = cpt * tokens_per_step, cfg.pretrain.steps
        cfg.pretrain.steps = max(1, round(base_steps * chars_per_step / (cpt * tokens_per_step)))
        pre = run_stage(by_name("pretrain"), cfg)
        run_stage(by_name("finetune"), cfg)
        model_dir = outputs_of(run_dir, PretrainOutputs).model_dir
        tok = AutoTokenizer.from_pretrained(model_dir)
        lm = AutoModelForCausalLM.from_pretrained(model_dir)
        bpc = evaluation.perplexity(lm, tok, heldout, max_len=cfg.model.max_seq_len)
        result = read_json(outputs_of(run_dir, FinetuneOutputs).results)["tasks"][0]
        auto = AutoModelForSequenceClassification if cfg.finetune.head == "cls" else AutoModelForCausalLM
        clf = auto.from_pretrained(result["model_dir"])
        acc = train.score(cfg.finetune.head, clf, tok, task, test, cfg.finetune.max_len)["accuracy"]
        row = {
            "kind": kind,
            "vocab_size": len(tok),
            "vocab_size_asked": cfg.tokenizer.vocab_size,
            "pretrain_steps": cfg.pretrain.steps,
            "pretrain_tokens": cfg.pretrain.steps * tokens_per_step,
            "pretrain_chars": round(cfg.pretrain.steps * tokens_per_step * cpt),
            "pretrain_s": pre["wall_s"],
            "bits_per_char": round(bpc["bits_per_char"], 4),
            "perplexity": round(bpc["perplexity"], 2),
            "nsmc_accuracy": round(acc, 4),
            "nsmc_test_rows": len(test),
            "parameters": pre["counts"]["parameters"],
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def with_model_measures(text: list[dict], model: list[dict]) -> list[dict]:
    """Each text row whose kind and asked size a model was trained with gets that model's bits per character and
    NSMC accuracy (`char` has one row, whatever the size asked). The model's tokenizer is the pipeline's own
    tokenizer stage of that kind and size (trained on the whole curated corpus, not the study's first documents)."""
    rows = [{k: v for k, v in r.items() if k not in ("bits_per_char", "nsmc_accuracy")} for r in text]
    for m in model:
        for r in text_rows_of(m, rows):
            r["bits_per_char"], r["nsmc_accuracy"] = m["bits_per_char"], m["nsmc_accuracy"]
    return rows


def text_rows_of(m: dict, text: list[dict]) -> list[dict]:
    """The text study's rows of a model-study row's tokenizer: its kind at the size asked, or the kind's only row."""
    mine = [r for r in text if r["kind"] == m["kind"]]
    return [r for r in mine if r["vocab_size_asked"] == m.get("vocab_size_asked")] or (mine if len(mine) == 1 else [])


# what the default is chosen on, each lower-is-better: quality per character of text, accuracy after the same
# fine-tuning, compute for the same text (tokens per character), and the time to train the tokenizer (the demo's)
CRITERIA = {"bits_per_char": 1, "nsmc_accuracy": -1, "tokens_per_char": 1, "tokenizer_train_s": 1}


def recommend(text: list[dict], model: list[dict]) -> dict:
    """The default: where models were trained, the lowest sum of ranks over CRITERIA (ties: bits per character),
    because the lowest bits per character alone picks `char`, which needs about twice the tokens (so compute and
    context) for the same text and fine-tunes worst; else the fewest tokens per eojeol among the exact
    round-trippers at 8k."""
    if model:
        rows = [
            {
                **m,
                "tokens_per_char": m["pretrain_tokens"] / m["pretrain_chars"],
                "tokenizer_train_s": next((r["train_s"] for r in text_rows_of(m, text)), 0),
            }
            for m in model
        ]
        ranks = {m["kind"]: {} for m in rows}
        for key, sign in CRITERIA.items():
            values = sorted(sign * m[key] for m in rows)
            for m in rows:  # ties share the mean rank
                hits = [i + 1 for i, v in enumerate(values) if v == sign * m[key]]
                ranks[m["kind"]][key] = sum(hits) / len(hits)
        best = min(rows, key=lambda m: (sum(ranks[m["kind"]].values()), m["bits_per_char"]))
        leaders = {key: min(rows, key=lambda m: CRITERIA[key] * m[key])["kind"] for key in CRITERIA}
        return {
            "kind": best["kind"],
            "ranks": ranks,
            "leaders": leaders,
            "why": f"the best sum of ranks ({sum(ranks[best['kind']].values()):g}) over bits per character, NSMC "
            f"accuracy, tokens per character and tokenizer training time of the {len(rows)} models trained "
            f"on the same text; leaders: " + ", ".join(f"{k} {v}" for k, v in leaders.items()),
        }
    small = [
        r
        for r in text
        if r["vocab_size_asked"] == min(r["vocab_size_asked"] for r in text)
        and r.get("roundtrip_rate_to_syllables", r["roundtrip_rate"]) == 1.0
    ]
    best = min(small, key=lambda r: r["tokens_per_eojeol"])
    return {
        "kind": best["kind"],
        "why": f"fewest tokens per eojeol ({best['tokens_per_eojeol']}) among exact "
        f"round-trippers at {best['vocab_size_asked']}; no model study was run",
    }


def write_report(result: dict, folder: str) -> None:
    """tokenizers_report.md (every row) and tokenizers.png (tokens per eojeol against vocabulary size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["tokenizers"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = sorted((r["vocab_size"], r["tokens_per_eojeol"]) for r in rows if r["kind"] == kind)
        ax.plot(*zip(*mine), marker="o", label=kind)
    ax.set(xscale="log", xlabel="vocabulary size", ylabel="tokens per eojeol (held-out NSMC)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "tokenizers.png"), dpi=120)
    plt.close(fig)
    keys = [
        "chars_per_token_nsmc",
        "chars_per_token_klue",
        "chars_per_token_comments",
        "tokens_per_eojeol_nsmc",
        "tokens_per_eojeol_klue",
        "tokens_per_eojeol_comments",
        "byte_fallback_rate",
        "roundtrip_rate",
        "morpheme_crossing_rate",
        "train_s",
        "peak_rss_mb",
        "encode_mb_per_s",
    ]
    lines = [
        "# Korean tokenizers compared",
        "",
        f"`{result['command']}` on {result['machine']}, {result['date']}. "
        f"Each kind trained on the first {result['train_docs']:,} curated documents; measured on "
        + ", ".join(f"{k} ({v['texts']:,} texts, {v['chars']:,} characters)" for k, v in result["eval_sets"].items())
        + ". Peak RSS is the training process's, Python and libraries included.",
        "",
        "![tokens per eojeol](tokenizers.png)",
        "",
        "| kind | vocab | " + " | ".join(keys) + " |",
        "|---|---:|" + "---:|" * len(keys),
    ]
    for r in rows:
        rt = f"{r['roundtrip_rate']}" + (
            f" ({r['roundtrip_rate_to_syllables']} after NFC)" if "roundtrip_rate_to_syllables" in r else ""
        )
        lines.append(
            f"| {r['kind']} | {r['vocab_size']:,} | "
            + " | ".join(rt if k == "roundtrip_rate" else str(r[k]) for k in keys)
            + " |"
        )
    lines += [
        "",
        "Round trips: `jamo_bpe` decodes to NFD jamo (ᄀ+ᅡ+ᆫ), which is not the NFC text it was given, so its "
        "plain round trip fails on every Hangul text; `kollm.tokenization.jamo.to_syllables` (NFC) restores it. "
        "`kiwi_bpe` only shapes the vocabulary (training text cut at Kiwi's morpheme boundaries), so it encodes "
        "plain text and round-trips exactly; joining Kiwi's morpheme *forms* would not (했 -> 하 + 었).",
    ]
    if result.get("model_study"):
        lines += [
            "",
            "## What it does to the model",
            "",
            "The tiny preset's model pretrained on the same characters with "
            "each tokenizer (the first kind's steps, scaled by chars/token), fine-tuned on NSMC the same way.",
            "",
            "| kind | vocab | steps | tokens | characters | pretrain s | held-out bits/char | perplexity | NSMC accuracy |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {m['kind']} | {m['vocab_size']:,} | {m['pretrain_steps']} | {m['pretrain_tokens']:,} | "
            f"{m['pretrain_chars']:,} | {m['pretrain_s']:.0f} | {m['bits_per_char']} | {m['perplexity']} | "
            f"{m['nsmc_accuracy']} ({m['nsmc_test_rows']} rows) |"
            for m in result["model_study"]
        ]
    rec = result["recommended"]
    if rec.get("ranks"):
        lines += [
            "",
            "Ranks (1 = best) on what the default is chosen on:",
            "",
            "| kind | " + " | ".join(CRITERIA) + " | sum |",
            "|---|" + "---:|" * (len(CRITERIA) + 1),
        ]
        lines += [
            f"| {k} | " + " | ".join(f"{r[c]:g}" for c in CRITERIA) + f" | {sum(r.values()):g} |"
            for k, r in rec["ranks"].items()
        ]
        lines += [
            "",
            "One run per kind. Before the BPE trainer was made deterministic (its alphabet cut broke ties in "
            "hash order), rerunning this command's bpe_metaspace model on 2026-12-03 gave bits/char 4.6223 and "
            "NSMC 0.817 (the log of that rerun; the study was stopped after it): differences between kinds of "
            "that size (~0.06 bits/char, ~0.5 pt) are within run-to-run noise.",
        ]
    lines += [
        "",
        f"**Recommended: {rec['kind']}** — {rec['why']}.",
        "",
        "## Anchors",
        "",
        "Their tokenizer files are not available offline here, and no tokens-per-eojeol figure "
        "for them was found in a source reachable from this machine, so only their published design is listed:",
        "",
        "| model | vocabulary | method |",
        "|---|---|---|",
    ]
    lines += [f"| {a['name']} | {a['vocab_size']} | {a['method']} |" for a in result["anchors"]]
    with open(os.path.join(folder, "tokenizers_report.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--train-one"]:
        kind, vocab, corpus, out, segmented = argv[1:6]
        train_one(kind, int(vocab), corpus, out, segmented)
        return 0
    from kollm.tokenization import KINDS

    os.environ["TOKENIZERS_PARALLELISM"] = "true"  # encode throughput on every core

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/laptop", help="a finished run (its data and curate stages are used)")
    ap.add_argument(
        "--kinds",
        nargs="*",
        default=list(KINDS),
        choices=KINDS,
        help="kinds for the text study (default: all); `--kinds` alone keeps the last text study's rows",
    )
    ap.add_argument("--vocabs", nargs="+", type=int, default=VOCABS)
    ap.add_argument("--train-docs", type=int, default=200_000, help="curated documents every tokenizer trains on")
    ap.add_argument(
        "--model-study",
        nargs="*",
        default=[],
        choices=KINDS,
        metavar="KIND",
        help="kinds to pretrain and fine-tune a model with (the first sets the text budget)",
    )
    ap.add_argument("--preset", default="tiny", help="the model study's recipe")
    ap.add_argument("--test-per-class", type=int, default=1000)
    ap.add_argument("overrides", nargs="*", help="model study: dotted overrides, e.g. pretrain.steps=300")
    args = ap.parse_args(argv)
    if load_manifest(args.run, "curate") is None:
        ap.error(f"{args.run}: no finished curate stage; run the pipeline first (kollm run pipeline preset=tiny)")
    data = require_manifest(args.run, "data")  # the data the run's own stages read
    sets = eval_sets(args.run, data.get("data_dir") or data["config"]["data"]["data_dir"] or _data_dir())
    out = os.path.join(HERE, "results", "tokenizers.json")
    previous = read_json(out) if os.path.exists(out) else {}
    text = text_study(args, sets) if args.kinds else previous.get("tokenizers", [])
    model = model_study(args) if args.model_study else previous.get("model_study", [])
    text = with_model_measures(text, model)
    result = {
        "name": "tokenizers",
        "train_docs": args.train_docs,
        "eval_sets": {k: {"texts": len(v), "chars": sum(map(len, v))} for k, v in sets.items()},
        "tokenizers": text,
        "model_study": model,
        "recommended": recommend(text, model),
        "anchors": ANCHORS,
    }
    cmd = ("python benchmarks/tokenizer_study.py " + " ".join(argv)).strip()
    if not args.kinds and not args.model_study and previous.get("command"):
        # nothing was measured: the rows are the previous command's, re-derived (recommendation, report) by this one
        result["rederived_by"], cmd = cmd, previous["command"]
    write_result(out, result, cmd)
    write_report(read_json(out), os.path.join(HERE, "results"))
    return 0


def _data_dir() -> str:
    from kollm.data import sources

    return sources.resolve_data_dir()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
