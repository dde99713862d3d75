"""Architectures compared at one non-embedding budget: training speed and memory, held-out loss after the
same tokens, and inference as the context grows.

    .venv/bin/python benchmarks/architectures.py --run runs/tiny            # every arch, the run's preset sizes
    .venv/bin/python benchmarks/architectures.py --run runs/tiny --archs llama mamba2 --steps 100

writes benchmarks/results/architectures.json, architectures_report.md and architectures_*.png.

Every architecture of the registry (kollm/models/architectures.py) at the run's `model.*` sizes (the others matched to
the Llama's non-embedding parameters), trained by kollm's torch loop from the same seed on the same token stream
(the run's pretrain stage's indexed data, same batches in the same order) for the same steps; held-out loss on
the run's validation tokens (the same windows for all). Inference, after training: a prompt of each context
length is prefilled, then 32 tokens are decoded greedily with the architecture's cache; per-token latency,
tokens/s, the cache's bytes (KV for attention, a fixed state for SSMs/RWKV) and the process's peak RSS growth.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.pipeline_tiny import write_result  # noqa: E402
from kollm.core.io import read_json  # noqa: E402
from kollm.models import (  # noqa: E402
    architectures,  # noqa: E402
    build_model,
    flush_subnormals,
)
from kollm.pretrain import indexed_data  # noqa: E402
from kollm.pretrain import torch_backend as pretrain  # noqa: E402
from stages.base import load_manifest, outputs_of  # noqa: E402
from stages.pretrain import PretrainOutputs  # noqa: E402

CONTEXTS = [128, 256, 512, 1024, 2048, 4096]
DECODE_TOKENS = 32


def tensor_bytes(obj, seen=None) -> int:
    """Bytes of every tensor reachable from a cache object (HF caches hold them in lists and layer objects)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__"):
        return sum(tensor_bytes(v, seen) for v in vars(obj).values())
    return 0


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@torch.no_grad()
def heldout_loss(model, tokens: np.ndarray, seq_len: int, batches: int, batch_size: int) -> float:
    return pretrain.evaluate_loss(model, tokens, batch_size, seq_len, batches=batches, seed=1234)


class TokenClock:
    """A generate() streamer that only notes when each token arrives: the prompt, then one call per new token."""

    def __init__(self):
        self.times: list[float] = []

    def put(self, value) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


@torch.no_grad()
def inference(model, contexts: list[int], vocab: int, dtype: torch.dtype) -> list[dict]:
    """Per context length, with the architecture's own cache through generate(): the prefill (prompt to first token)
    and the median time between decoded tokens; the cache's bytes after a forward pass over the prompt."""
    model.eval()
    rows = []
    gen = torch.Generator().manual_seed(0)

    def clocked(prompt, new: int) -> list[float]:
        clock = TokenClock()
        t0 = time.perf_counter()
        model.generate(prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False, streamer=clock)
        return [t0] + clock.times[1:]  # generate() hands the streamer the prompt first

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        clocked(torch.randint(0, vocab, (1, 16), generator=gen), 4)  # the first call's one-time costs
        for ctx in contexts:
            prompt = torch.randint(0, vocab, (1, ctx), generator=gen)
            before = rss_mb()
            out = model(input_ids=prompt, use_cache=True)
            # KV cache (attention), cache_params (Mamba), state (RWKV)
            cache_bytes = sum(tensor_bytes(getattr(out, k, None)) for k in ("past_key_values", "cache_params", "state"))
            del out
            times = clocked(prompt, DECODE_TOKENS)
            prefill_s, gaps = times[1] - times[0], np.diff(times[1:])
            per_token = float(np.median(gaps))
            rows.append(
                {
                    "context": ctx,
                    "prefill_s": round(prefill_s, 4),
                    "prefill_tokens_per_s": round(ctx / prefill_s, 1),
                    "ms_per_token": round(1000 * per_token, 2),
                    "decode_tokens_per_s": round(1 / per_token, 1),
                    "decoded_tokens": len(gaps) + 1,
                    "cache_mb": round(cache_bytes / 2**20, 3),
                    "rss_growth_mb": round(rss_mb() - before, 1),
                }
            )
            print(f"  context {ctx}: {rows[-1]}", flush=True)
    return rows


def study(args) -> dict:
    from transformers import AutoTokenizer

    from recipes import presets

    cfg = presets.build(args.preset, args.overrides)
    pre = outputs_of(args.run, PretrainOutputs)
    prefix = pre.indexed_data
    tokenizer = AutoTokenizer.from_pretrained(pre.model_dir)
    train_tokens = indexed_data.load_tokens(prefix)
    val_prefix = os.path.join(os.path.dirname(prefix), "val")
    val_tokens = indexed_data.load_tokens(val_prefix) if os.path.exists(val_prefix + ".bin") else None
    if val_tokens is None:
        raise SystemExit(f"{args.run}: the pretrain stage has no validation tokens ({val_prefix}.bin)")
    p = dataclasses.replace(
        cfg.pretrain,
        steps=args.steps,
        checkpoint_every=args.steps,
        log_every=max(1, args.steps // 20),
        precision=args.precision,
        warmup_steps=min(cfg.pretrain.warmup_steps, args.steps // 10),
    )
    rows = []
    for arch in args.archs:
        if not args.row_out:  # each architecture in a process of its own: peak RSS is a process's high-water mark
            row_out = os.path.join(args.work, f"{arch}.json")
            subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--run",
                    args.run,
                    "--preset",
                    args.preset,
                    "--archs",
                    arch,
                    "--steps",
                    str(args.steps),
                    "--precision",
                    args.precision,
                    "--contexts",
                    *map(str, args.contexts),
                    "--eval-batches",
                    str(args.eval_batches),
                    "--work",
                    args.work,
                    "--row-out",
                    row_out,
                    *args.overrides,
                ],
                check=True,
            )
            rows.append(read_json(row_out))
            continue
        m = dataclasses.replace(cfg.model, arch=arch)
        print(f"{arch}: {architectures.describe(m, tokenizer)}", flush=True)
        model = build_model(m, tokenizer, seed=p.seed)
        work = os.path.join(args.work, arch)
        shutil.rmtree(work, ignore_errors=True)  # a checkpoint left there would be resumed, not retrained
        before = rss_mb()
        t0 = time.perf_counter()
        result = pretrain.train_loop(model, train_tokens, p, work, 1.0)
        train_s = time.perf_counter() - t0
        history = result["history"]
        steady = history[1:] or history
        loss = heldout_loss(model, val_tokens, p.seq_len, args.eval_batches, p.batch_size)
        if arch in ("llama", "moe", "mla_moe", "hybrid"):  # attention: RoPE tables sized for the longest context
            model.config.max_position_embeddings = max(args.contexts) + DECODE_TOKENS + 1
        row = {
            **architectures.describe(m, tokenizer),
            "train_steps": p.steps,
            "train_tokens": p.steps * p.batch_size * p.seq_len,
            "train_s": round(train_s, 1),
            "train_tokens_per_s": round(float(np.mean([h["tokens_per_s"] for h in steady])), 1),
            "peak_mem_mb": round(max(h["peak_mem_mb"] for h in history), 1),
            "rss_growth_mb": round(rss_mb() - before, 1),
            "heldout_loss": round(loss, 4),
            "curve": [{"step": h["step"], "loss": h["loss"]} for h in history],
            "inference": inference(
                model, args.contexts, len(tokenizer), torch.bfloat16 if args.precision == "bf16" else torch.float32
            ),
        }
        print({k: v for k, v in row.items() if k not in ("curve", "inference")}, flush=True)
        with open(args.row_out, "w", encoding="utf-8") as f:
            json.dump(row, f)
        return {}
    return {
        "name": "architectures",
        "preset": args.preset,
        "precision": args.precision,
        "run": args.run,
        "inside": look_inside(pre.model_dir, tokenizer, args.out),
        "model": dataclasses.asdict(cfg.model),
        "pretrain": {"steps": p.steps, "batch_size": p.batch_size, "seq_len": p.seq_len, "lr": p.lr},
        "architectures": rows,
    }


SENTENCE = "이 영화 정말 재미있어요. 배우들의 연기가 최고였다"


def look_inside(model_dir: str, tokenizer, folder: str) -> dict:
    """The run's own pretrained Llama, loaded into course/scratch/llama.py: attention maps and the logit lens."""
    from course.scratch import llama
    from kollm.models import inside

    model = llama.from_pretrained(model_dir)
    os.makedirs(folder, exist_ok=True)
    inside.attention_maps(model, tokenizer, SENTENCE, os.path.join(folder, "architectures_attention.png"))
    lens = inside.logit_lens(model, tokenizer, SENTENCE, os.path.join(folder, "architectures_logit_lens.png"))
    return {
        "model_dir": os.path.relpath(model_dir, REPO),
        "sentence": SENTENCE,
        "p_next_by_layer": [round(float(sum(layer) / len(layer)), 4) for layer in lens["p_next"]],
    }


def trade_offs(rows: list[dict]) -> list[str]:
    """One paragraph per architecture, every claim a ratio of this run's numbers to the Llama's."""
    base = next((r for r in rows if r["arch"] == "llama"), rows[0])
    lo, hi = min(i["context"] for i in base["inference"]), max(i["context"] for i in base["inference"])

    def at(r, ctx, key):
        return next(i[key] for i in r["inference"] if i["context"] == ctx)

    lines = []
    for r in rows:
        growth = at(r, hi, "ms_per_token") / max(at(r, lo, "ms_per_token"), 1e-9)
        cache = at(r, hi, "cache_mb") / max(at(r, lo, "cache_mb"), 1e-9)
        memory = (
            f"its cache grows x{cache:.1f} from {lo} to {hi} tokens ({at(r, hi, 'cache_mb')} MB: a KV cache)"
            if cache > 1.5
            else f"its state stays {at(r, hi, 'cache_mb')} MB at every context (constant state)"
        )
        text = (
            f"- **{r['arch']}**: trains at x{r['train_tokens_per_s'] / base['train_tokens_per_s']:.2f} the Llama's "
            f"tokens/s, held-out loss {r['heldout_loss'] - base['heldout_loss']:+.3f} vs the Llama after the same "
            f"tokens; decoding a token at {hi} context costs x{growth:.2f} what it costs at {lo}; {memory}."
        )
        if "active_non_embedding_params" in r:
            text += (
                f" A token passes through {r['active_non_embedding_params']:,} of its "
                f"{r['non_embedding_params']:,} non-embedding parameters."
            )
        lines.append(text)
    best = min(rows, key=lambda r: r["heldout_loss"])
    fastest = max(rows, key=lambda r: r["train_tokens_per_s"])
    flat = min(rows, key=lambda r: at(r, hi, "ms_per_token"))
    lines += [
        "",
        "**Recommendation.** At this scale, on this data and this CPU: "
        f"{best['arch']} reaches the lowest held-out loss ({best['heldout_loss']:.3f}) and {fastest['arch']} "
        f"trains fastest ({fastest['train_tokens_per_s']:,.0f} tokens/s), so "
        + (
            "the Llama stays the default."
            if best["arch"] == fastest["arch"] == "llama"
            else f"{best['arch']} is the pick when quality per token matters and {fastest['arch']} when the "
            "laptop's time does."
        )
        + f" For long contexts {flat['arch']} decodes cheapest at {hi} tokens "
        f"({at(flat, hi, 'ms_per_token')} ms/token). On CPU the SSMs and RWKV run HF's reference PyTorch "
        "scans, not the CUDA kernels they are built for; at GPU scale (bf16, their kernels, the megatron "
        "backend for the Llama) the speed ranking is not this one — measure there before choosing.",
    ]
    return lines


def write_report(result: dict, folder: str) -> None:
    from kollm.core.plotting import pyplot

    plt = pyplot()
    plt.rcdefaults()  # look_inside set NanumGothic, whose missing U+2212 breaks the log axes' labels here
    rows = result["architectures"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.plot([c["step"] for c in r["curve"]], [c["loss"] for c in r["curve"]], label=r["arch"])
    ax.set(xlabel="step (same tokens for every architecture)", ylabel="training loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "architectures_loss.png"), dpi=120)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for r in rows:
        ctx = [i["context"] for i in r["inference"]]
        axes[0].plot(ctx, [i["ms_per_token"] for i in r["inference"]], marker="o", label=r["arch"])
        axes[1].plot(ctx, [i["cache_mb"] for i in r["inference"]], marker="o", label=r["arch"])
    axes[0].set(xscale="log", yscale="log", xlabel="context (tokens)", ylabel="ms per decoded token")
    axes[1].set(xscale="log", yscale="log", xlabel="context (tokens)", ylabel="cache / state (MB)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "architectures_inference.png"), dpi=120)
    plt.close(fig)
    longest = max(i["context"] for i in rows[0]["inference"])
    lines = [
        "# Architectures at one non-embedding budget",
        "",
        f"`{result['command']}` on {result['machine']}, {result['date']}; {result['precision']}; every model "
        f"trained {result['pretrain']['steps']} steps x {result['pretrain']['batch_size']} x "
        f"{result['pretrain']['seq_len']} tokens from the same seed and batches.",
        "",
        "![loss](architectures_loss.png)",
        "",
        "![inference](architectures_inference.png)",
        "",
        f"| arch | params | non-embedding (budget) | active | train tok/s | peak MB | held-out loss | "
        f"ms/token @128 | ms/token @{longest} | cache MB @{longest} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        inf = {i["context"]: i for i in r["inference"]}
        lines.append(
            f"| {r['arch']} | {r['params']:,} | {r['non_embedding_params']:,} ({r['budget_non_embedding_params']:,}) "
            f"| {r.get('active_non_embedding_params', r['non_embedding_params']):,} | {r['train_tokens_per_s']:,.0f} "
            f"| {r['peak_mem_mb']:,.0f} | {r['heldout_loss']:.3f} | {inf[min(inf)]['ms_per_token']} "
            f"| {inf[longest]['ms_per_token']} | {inf[longest]['cache_mb']} |"
        )
    lines += ["", "## Trade-offs, from these numbers", ""] + trade_offs(rows)
    if result.get("inside"):
        inside = result["inside"]
        lines += [
            "",
            "## Inside the Llama",
            "",
            f"The run's pretrained Llama ({inside['model_dir']}), loaded into course/scratch/llama.py, reading "
            f'"{inside["sentence"]}": attention per layer and head, and the logit lens (the final norm and '
            "LM head after every layer). Mean probability of the real next token by layer (0 = embeddings): "
            + ", ".join(f"{p:.3f}" for p in inside["p_next_by_layer"])
            + ".",
            "",
            "![attention](architectures_attention.png)",
            "",
            "![logit lens](architectures_logit_lens.png)",
        ]
    with open(os.path.join(folder, "architectures_report.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/tiny", help="a run whose pretrain stage finished (its tokens and tokenizer)")
    ap.add_argument("--preset", default="tiny", help="the recipe whose model.* and pretrain.* sizes are used")
    ap.add_argument("--archs", nargs="+", default=list(architectures.ARCHS), choices=architectures.ARCHS)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--contexts", nargs="+", type=int, default=CONTEXTS)
    ap.add_argument("--eval-batches", type=int, default=32)
    ap.add_argument(
        "--work",
        default=os.path.join(tempfile.gettempdir(), "kollm-architectures"),
        help="checkpoints and metrics of the runs",
    )
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="where the JSON, report and plots go")
    ap.add_argument("--row-out", default="", help=argparse.SUPPRESS)  # one architecture's row, from a child process
    ap.add_argument("overrides", nargs="*", help="dotted overrides of the preset, e.g. model.num_layers=2")
    args = ap.parse_args(argv)
    if load_manifest(args.run, "pretrain") is None:
        ap.error(f"{args.run}: no finished pretrain stage; run `kollm run pipeline preset={args.preset}` first")
    # the comparison is of architectures, not of subnormal floats (the serving engine's path was unaffected)
    flush_subnormals()
    result = study(args)
    if args.row_out:
        return 0
    os.makedirs(args.out, exist_ok=True)
    out = os.path.join(args.out, "architectures.json")
    write_result(out, result, ("python benchmarks/architectures.py " + " ".join(argv)).strip())
    write_report(read_json(out), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
