"""Pretrain the Llama from scratch (backend torch or megatron): tokenise, train, export a HF model.

Runs as one process or as every rank of a torchrun job (`pretrain.nproc_per_node`, and
`run.nodes` on Slurm): rank 0 tokenises the curated corpus into Megatron's indexed .bin/.idx
while the others wait, every rank trains, rank 0 writes the HF model the later stages load.
With `pretrain.corpus` and `pretrain.tokenizer_dir` set it reads no other stage (standalone).
A rerun resumes the tokenised data and the newest checkpoint only when they were made for the same
tokenizer, corpus and model (`resume_key.json`); otherwise they are moved to `*.stale` and it starts
fresh. Training settings (steps, learning rate) may change between resumes, as in Megatron.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

from kollm.config import PipelineConfig
from kollm.core import KollmError, StoppedEarly, read_json, sha256_file, write_json
from stages.base import Outputs, inputs
from stages.curate import CurateOutputs
from stages.tokenizer import TokenizerOutputs


@dataclasses.dataclass(frozen=True)
class PretrainOutputs(Outputs):
    model_dir: str  # the pretrained LM as a HF model folder (AutoModelForCausalLM.from_pretrained)
    loss_png: str  # the training and validation loss curve
    metrics: str  # one JSON line per logged step (metrics.jsonl)
    indexed_data: str  # prefix of the tokenised corpus in Megatron's indexed format (.bin/.idx)


def standalone(cfg: PipelineConfig) -> bool:
    """A corpus and tokenizer given in the config: the curate and tokenizer stages are not read."""
    return bool(cfg.pretrain.corpus)


def ranks_per_node(cfg: PipelineConfig) -> int:
    """torchrun ranks on each node: GPUs, or gloo ranks on a CPU."""
    return cfg.pretrain.nproc_per_node


def multi_node(cfg: PipelineConfig) -> bool:
    """Pretraining spans nodes: torchrun on every node, rendezvous on the first."""
    return True


def data_paths(cfg: PipelineConfig) -> tuple[str, str, str]:
    """(train corpus, validation corpus, tokenizer folder): standalone paths or the upstream stages'."""
    p = cfg.pretrain
    if standalone(cfg):
        return p.corpus, p.val_corpus, p.tokenizer_dir
    curated = inputs(cfg, CurateOutputs)
    return curated.corpus, curated.heldout, inputs(cfg, TokenizerOutputs).tokenizer_dir


def resume_key(cfg: PipelineConfig) -> dict:
    """What the tokenised data (`data`) and the checkpoints (`data` and `model`) were made from."""
    corpus, val_corpus, tokenizer_dir = data_paths(cfg)
    tokenizer_json = os.path.join(tokenizer_dir, "tokenizer.json")
    files = (
        [tokenizer_json]
        if os.path.isfile(tokenizer_json)
        else sorted(
            os.path.join(tokenizer_dir, n)
            for n in os.listdir(tokenizer_dir)
            if os.path.isfile(os.path.join(tokenizer_dir, n))
        )
    )
    size = lambda p: [os.path.abspath(p), os.path.getsize(p)] if p and os.path.exists(p) else [p]  # noqa: E731
    return {
        "data": {
            "tokenizer": [sha256_file(f)[:16] for f in files],
            "corpus": size(corpus),
            "val_corpus": size(val_corpus),
            "rating_in_text": cfg.pretrain.rating_in_text,
        },
        "model": dataclasses.asdict(cfg.model),
    }


def set_aside_stale_work(cfg: PipelineConfig, out: str, dist) -> None:
    """Rank 0 moves tokenised data and checkpoints made for another tokenizer, corpus or model out of the
    way (a changed tokenizer of the same size would otherwise resume silently on the old ids)."""
    path = os.path.join(out, "resume_key.json")
    if dist.main:
        key, old = resume_key(cfg), read_json(path) if os.path.exists(path) else None
        stale = (
            []
            if old is None
            else ["data", "checkpoints"]
            if old["data"] != key["data"]
            else ["checkpoints"]
            if old["model"] != key["model"]
            else []
        )
        why = "tokenizer or corpus" if "data" in stale else "model config"
        for name in stale:
            here = os.path.join(out, name)
            if os.path.exists(here):
                shutil.rmtree(here + ".stale", ignore_errors=True)
                os.replace(here, here + ".stale")
                print(
                    f"[pretrain] {here} was made for another {why}: moved to {here}.stale, starting fresh", flush=True
                )
        write_json(path, key)
    dist.barrier()


def tokenize(cfg: PipelineConfig, out: str, dist) -> dict:
    """Rank 0 builds the indexed datasets (resumable), the other ranks wait for them."""
    from kollm.pretrain import build_indexed_dataset

    corpus, val_corpus, tokenizer_dir = data_paths(cfg)
    prefixes = {"train": os.path.join(out, "data", "train"), "val": os.path.join(out, "data", "val")}
    if dist.main:
        build_indexed_dataset(
            corpus,
            tokenizer_dir,
            prefixes["train"],
            workers=cfg.pretrain.tokenize_workers,
            rating_in_text=cfg.pretrain.rating_in_text,
        )
        if val_corpus:
            build_indexed_dataset(val_corpus, tokenizer_dir, prefixes["val"], workers=cfg.pretrain.tokenize_workers)
    dist.barrier()
    if not val_corpus:
        prefixes.pop("val")
    return prefixes


def run(cfg: PipelineConfig, out: str) -> dict:
    import torch
    from transformers import AutoTokenizer

    from kollm.models import parameter_count
    from kollm.pretrain import Distributed, plot_loss, summarize, train_and_export

    if cfg.pretrain.backend == "megatron" and not torch.cuda.is_available():
        raise KollmError(
            "pretrain.backend=megatron needs NVIDIA GPUs (megatron-core is CUDA-only); "
            "on a CPU use pretrain.backend=torch"
        )
    dist = Distributed()
    set_aside_stale_work(cfg, out, dist)
    prefixes = tokenize(cfg, out, dist)
    tokenizer = AutoTokenizer.from_pretrained(data_paths(cfg)[2])
    final = os.path.join(out, "model")
    result = train_and_export(cfg.pretrain.backend, cfg.model, cfg.pretrain, prefixes, tokenizer, out, final)
    if result["stopped_early"]:  # every rank: each exits with the status that requeues the job
        raise StoppedEarly(
            f"stopped at step {result['steps']} of {cfg.pretrain.steps} on request "
            "(SIGTERM/SIGUSR1); the checkpoint is saved: rerun the same command to resume"
        )
    if not dist.main:
        return {}
    history = result.pop("history")
    plot_loss(history, os.path.join(out, "loss.png"))
    summary = summarize(history)
    train_meta = read_json(prefixes["train"] + ".json")
    return {
        "outputs": PretrainOutputs(
            model_dir=os.path.abspath(final),
            loss_png=os.path.abspath(os.path.join(out, "loss.png")),
            metrics=os.path.abspath(os.path.join(out, "metrics.jsonl")),
            indexed_data=os.path.abspath(prefixes["train"]),
        ),
        "counts": {
            "train_tokens": train_meta["tokens"],
            "train_documents": train_meta["documents"],
            "vocab_size": len(tokenizer),
            "parameters": parameter_count(cfg.model, len(tokenizer)),
            "steps": result["steps"],
            "world_size": result["world_size"],
            "tokens_seen": result["steps"] * cfg.pretrain.batch_size * cfg.pretrain.seq_len,
        },
        "metrics": {
            "loss_first": summary["loss_first"],
            "loss_last": summary["loss_last"],
            "val_loss": result.get("val_loss"),
            "tokens_per_s": summary["tokens_per_s"],
            "flops_per_token": result["flops_per_token"],
            "flops_per_token_formula": "6N + 12 * layers * hidden * seq_len",
            "threads": torch.get_num_threads(),
            "mfu": summary["mfu"],
            "peak_flops": result["peak_flops"],
            "peak_flops_source": result["peak_flops_source"],
            "peak_mem_mb": summary["peak_mem_mb"],
        },
        "backend": cfg.pretrain.backend,
        "resumed_from": result["resumed_from"],
    }
