"""GPU pretraining throughput and MFU: the `1b` preset's model, both backends, on this host's GPUs.

    .venv/bin/python benchmarks/pretrain_gpu.py prepare DATA   # any machine: Korean BPE (32k) + NSMC tokens
    python benchmarks/pretrain_gpu.py run DATA                 # the GPU host: writes results/pretrain_gpu.json

`prepare` trains the GPU presets' 32k-token Korean BPE on NSMC reviews and tokenises them into
the indexed .bin/.idx both backends read (a few MB: carry it to a host with no data or hub).
`run` trains the 1b preset's Llama (Llama 3.2 1B shape, the 32k vocab) in bf16 with each backend
(`torch`: HF Llama + kollm's loop, DDP across GPUs; `megatron`: megatron-core GPTModel, Transformer
Engine layers where TE is installed), one process per GPU under torchrun, no checkpoints, and
records tokens/s per GPU and MFU over the steps after a warm-up. MFU = tokens/s x FLOPs per token
(6N + 12 x layers x hidden x seq_len) / the GPUs' datasheet bf16 peak (`kollm.pretrain.mfu`).

Needs torch with CUDA, transformers and megatron-core (an NGC NeMo or PyTorch container has them or
takes `pip install megatron-core`); a host with no network takes DATA and a megatron-core wheel
copied over (on PYTHONPATH), nothing else.

The global batch is `--rows-per-gpu` x GPUs sequences of the preset's 4,096 tokens, in micro-batches
of the preset's 4 rows; any `section.key=value` override is applied after. `--allow-cpu` runs the
same plumbing on a CPU (the tests do, with a tiny model) and never writes the results file.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

WARMUP_LOGS = 2  # logged windows left out of the steady state (compilation, allocator, NCCL set-up)


def prepare(data: str, reviews: int) -> dict:
    from kollm.data import sources
    from kollm.pretrain import indexed_data
    from kollm.tokenization import train_bpe
    from recipes import presets

    vocab = presets.llama_1b_8gpu().tokenizer.vocab_size
    texts = [r["text"] for r in sources.iter_nsmc(sources.resolve_data_dir(), limit=reviews)]
    tokenizer = train_bpe(texts, vocab_size=vocab)
    tokenizer.save_pretrained(os.path.join(data, "tokenizer"))
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.jsonl")
        with open(corpus, "w", encoding="utf-8") as f:
            for text in texts:
                f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
        summary = indexed_data.build_indexed_dataset(
            corpus, os.path.join(data, "tokenizer"), os.path.join(data, "train")
        )
    print(f"{data}: {len(tokenizer):,}-token BPE, {summary['documents']:,} reviews, {summary['tokens']:,} tokens")
    return summary


def bench_config(preset: str, gpus: int, rows_per_gpu: int, steps: int, overrides: list[str]):
    from recipes import presets

    cfg = presets.build(
        preset,
        [
            f"pretrain.nproc_per_node={gpus}",
            "run.nodes=1",
            f"pretrain.batch_size={rows_per_gpu * gpus}",
            f"pretrain.steps={steps}",
            "pretrain.log_every=5",
            *overrides,
        ],
    )
    cfg.pretrain.checkpoint_every = 0  # throughput only: the loop writes no checkpoint
    return cfg


def train_one(job_path: str) -> None:
    """One torchrun rank: train with the job's backend; rank 0 writes the loop's result."""
    import torch
    from transformers import AutoTokenizer

    from kollm import config
    from kollm.models import flops_per_token, parameter_count
    from kollm.pretrain import frame as training

    job = json.load(open(job_path))
    cfg = config.from_dict(job["config"])
    p = cfg.pretrain
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(job["data"], "tokenizer"))
    fpt = flops_per_token(cfg.model, len(tokenizer), p.seq_len)
    parameters = parameter_count(cfg.model, len(tokenizer))
    # the backend's loop without the export: no checkpoint is written in the timed run
    backend = importlib.import_module(training.BACKENDS[p.backend])
    result = backend.train(cfg.model, p, {"train": os.path.join(job["data"], "train")}, tokenizer, job["out"], fpt)
    backend.teardown()
    if int(os.environ.get("RANK", 0)) == 0:
        result.update(
            flops_per_token=fpt,
            parameters=parameters,
            device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        )
        with open(os.path.join(job["out"], "result.json"), "w") as f:
            json.dump(result, f)


def steady(history: list[dict]) -> dict:
    """Mean tokens/s and MFU of the logged windows after the warm-up ones."""
    rows = history[WARMUP_LOGS:] or history[-1:]
    return {
        "tokens_per_s": sum(r["tokens_per_s"] for r in rows) / len(rows),
        "mfu": sum(r["mfu"] for r in rows) / len(rows),
        "windows": len(rows),
        "peak_mem_mb": max(r["peak_mem_mb"] for r in history),
    }


def run(args) -> dict:
    import torch

    gpus = torch.cuda.device_count()
    if not gpus and not args.allow_cpu:
        raise SystemExit(
            "error: no CUDA GPU here; this benchmark is for GPU hosts (on a CPU: benchmarks/pretrain_cpu.py)"
        )
    ranks = gpus or 1
    from kollm import config

    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    work = tempfile.mkdtemp(prefix="kollm-bench-gpu-")
    results = {}
    for backend in args.backends.split(","):
        cfg = bench_config(
            args.preset, ranks, args.rows_per_gpu, args.steps, [f"pretrain.backend={backend}", *args.overrides]
        )
        out = os.path.join(work, backend)
        os.makedirs(out)
        job = os.path.join(out, "job.json")
        with open(job, "w") as f:
            json.dump({"config": config.to_dict(cfg), "data": os.path.abspath(args.data), "out": out}, f)
        proc = subprocess.run(
            [torchrun, "--standalone", "--nproc-per-node", str(ranks), os.path.abspath(__file__), "_train", job],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([REPO, *filter(None, [os.environ.get("PYTHONPATH")])])},
        )
        if proc.returncode:
            results[backend] = {"error": f"exit status {proc.returncode} (its output is above)"}
            continue
        r = json.load(open(os.path.join(out, "result.json")))
        s = steady(r["history"])
        results[backend] = {
            "tokens_per_s_per_gpu": round(s["tokens_per_s"] / ranks, 1),
            "mfu": round(s["mfu"], 4),
            "peak_mem_mb_per_gpu": s["peak_mem_mb"],
            "steady_windows": s["windows"],
            "steps": r["steps"],
            "peak_flops_per_gpu": r["peak_flops"],
            "peak_flops_source": r["peak_flops_source"],
        }
        shape = {
            "parameters": r["parameters"],
            "flops_per_token": r["flops_per_token"],
            "device": r["device"],
            "model": config.to_dict(cfg)["model"],
            "global_batch_rows": cfg.pretrain.batch_size,
            "micro_batch_size": cfg.pretrain.micro_batch_size,
            "seq_len": cfg.pretrain.seq_len,
            "precision": cfg.pretrain.precision,
        }
    if not any("mfu" in v for v in results.values()):
        raise SystemExit(f"error: no backend ran: {results}")
    best = max((v for v in results.values() if "mfu" in v), key=lambda v: v["mfu"])
    return {
        "name": "pretrain_gpu",
        "preset": args.preset,
        "gpus": ranks,
        **shape,
        "mfu": best["mfu"],
        "tokens_per_s_per_gpu": best["tokens_per_s_per_gpu"],
        "backends": results,
        "goal_mfu_megatron": 0.45,
        "versions": versions(),
        "command": " ".join(
            [
                "python benchmarks/pretrain_gpu.py run DATA",
                f"--backends {args.backends}",
                f"--preset {args.preset}",
                f"--steps {args.steps}",
                f"--rows-per-gpu {args.rows_per_gpu}",
                *args.overrides,
            ]
        ),
        "machine": gpu_machine(),
        "date": datetime.date.today().isoformat(),
    }


def versions() -> dict:
    from importlib import metadata

    found = {}
    for name in ("torch", "transformers", "megatron-core", "transformer-engine"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    import torch

    found["cuda"] = torch.version.cuda
    return found


def gpu_machine() -> str:
    import platform

    import torch

    from benchmarks.pipeline_tiny import machine

    if not torch.cuda.is_available():
        return machine()
    name = torch.cuda.get_device_name()
    return f"{torch.cuda.device_count()} x {name}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["_train"]:
        train_one(argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="tokenizer + indexed NSMC tokens into DATA (any machine)")
    prep.add_argument("data")
    prep.add_argument("--reviews", type=int, default=200_000, help="NSMC reviews to tokenise (default 200,000)")
    bench = sub.add_parser("run", help="train both backends on this host's GPUs and write the results")
    bench.add_argument("data", help="a folder written by `prepare`")
    bench.add_argument(
        "overrides",
        nargs="*",
        help="section.key=value, applied after the benchmark's settings (right after DATA, before the options)",
    )
    bench.add_argument("--backends", default="megatron,torch")
    bench.add_argument("--preset", default="1b")
    bench.add_argument("--steps", type=int, default=30)
    bench.add_argument("--rows-per-gpu", type=int, default=8, help="sequences per GPU per step (default 8)")
    bench.add_argument("--out", default=os.path.join(HERE, "results", "pretrain_gpu.json"))
    bench.add_argument(
        "--allow-cpu",
        action="store_true",
        help="run the plumbing on a CPU; writes --out only if it is given explicitly",
    )
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.data, args.reviews)
        return 0
    if not os.path.exists(os.path.join(args.data, "train.bin")):
        raise SystemExit(f"error: {args.data} has no train.bin: run `benchmarks/pretrain_gpu.py prepare {args.data}`")
    result = run(args)
    if args.allow_cpu and args.out == bench.get_default("out"):
        print(json.dumps(result, indent=2))
        return 0
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(json.dumps({k: result[k] for k in ("mfu", "tokens_per_s_per_gpu", "device")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
