"""Stage 4, pretrain: tokenise the curated corpus (indexed .bin/.idx), train, save a HF model.

Runs as one process or as every rank of a torchrun job (`pretrain.nproc_per_node`, and
`run.nodes` on Slurm): rank 0 tokenises while the others wait, every rank trains, rank 0
writes the HF model the later stages load. The backend (torch | megatron) is config.
"""

from __future__ import annotations

import os

from kollm.config import PipelineConfig, validate
from kollm.errors import KollmError
from kollm.io import read_json
from kollm.stages.runner import stage_dir


def data_paths(cfg: PipelineConfig) -> tuple[str, str, str]:
    """(train corpus, validation corpus, tokenizer folder): standalone paths or the run's stages."""
    p = cfg.pretrain
    if p.corpus:
        return p.corpus, p.val_corpus, p.tokenizer_dir
    curate = stage_dir(cfg, "curate")
    return (os.path.join(curate, "corpus.jsonl"), os.path.join(curate, "heldout.jsonl"),
            stage_dir(cfg, "tokenizer"))


def tokenize(cfg: PipelineConfig, out: str, dist) -> dict:
    """Rank 0 builds the indexed datasets (resumable), the other ranks wait for them."""
    from kollm import indexed_data

    corpus, val_corpus, tokenizer_dir = data_paths(cfg)
    prefixes = {"train": os.path.join(out, "data", "train"), "val": os.path.join(out, "data", "val")}
    if dist.main:
        indexed_data.build_indexed_dataset(corpus, tokenizer_dir, prefixes["train"],
                                           workers=cfg.pretrain.tokenize_workers,
                                           rating_in_text=cfg.pretrain.rating_in_text)
        if val_corpus:
            indexed_data.build_indexed_dataset(val_corpus, tokenizer_dir, prefixes["val"],
                                               workers=cfg.pretrain.tokenize_workers)
    dist.barrier()
    if not val_corpus:
        prefixes.pop("val")
    return prefixes


def run(cfg: PipelineConfig, out: str) -> dict:
    import torch
    from transformers import AutoTokenizer

    from kollm import indexed_data, pretrain
    from kollm.model import build_model, count_params, flops_per_token

    validate(cfg)
    if cfg.pretrain.backend == "megatron" and not torch.cuda.is_available():
        raise KollmError("pretrain.backend=megatron needs NVIDIA GPUs (megatron-core is CUDA-only); "
                         "on a CPU use pretrain.backend=torch")
    dist = pretrain.Distributed()
    prefixes = tokenize(cfg, out, dist)
    tokenizer = AutoTokenizer.from_pretrained(data_paths(cfg)[2])
    model = build_model(cfg.model, tokenizer, seed=cfg.pretrain.seed)
    fpt = flops_per_token(model, cfg.pretrain.seq_len)
    final = os.path.join(out, "model")
    if cfg.pretrain.backend == "megatron":
        from kollm.megatron.train import train_and_export

        result = train_and_export(cfg.model, cfg.pretrain, prefixes, tokenizer, out, fpt, final)
    else:
        tokens = indexed_data.load_tokens(prefixes["train"])
        val_tokens = indexed_data.load_tokens(prefixes["val"]) if "val" in prefixes else None
        result = pretrain.train(model, tokens, cfg.pretrain, out, fpt, val_tokens=val_tokens)
        if dist.main:
            # from the last checkpoint's full weights: the same code path for 1 process, DDP and FSDP
            export = build_model(cfg.model, tokenizer)
            pretrain.load_weights(export, os.path.join(pretrain.latest_checkpoint(
                os.path.join(out, "checkpoints")), "model.safetensors"))
            export.save_pretrained(final, safe_serialization=True)
            tokenizer.save_pretrained(final)
    if not dist.main:
        return {}
    if result.get("stopped_early"):
        raise KollmError(f"stopped at step {result['steps']} of {cfg.pretrain.steps} on request (SIGTERM/SIGUSR1); "
                         "the checkpoint is saved: rerun the same command to resume")
    history = result.pop("history")
    pretrain.plot_loss(history, os.path.join(out, "loss.png"))
    window = max(1, len(history) // 10)
    first = sum(h["loss"] for h in history[:window]) / window
    last = sum(h["loss"] for h in history[-window:]) / window
    steady = history[1:] or history  # the first log window includes start-up
    train_meta = read_json(prefixes["train"] + ".json")
    return {
        "outputs": {"model_dir": os.path.abspath(final), "loss_png": os.path.abspath(os.path.join(out, "loss.png")),
                    "metrics": os.path.abspath(os.path.join(out, "metrics.jsonl")),
                    "indexed_data": os.path.abspath(prefixes["train"])},
        "counts": {"train_tokens": train_meta["tokens"], "train_documents": train_meta["documents"],
                   "vocab_size": len(tokenizer), "parameters": count_params(model), "steps": result["steps"],
                   "world_size": result["world_size"],
                   "tokens_seen": result["steps"] * cfg.pretrain.batch_size * cfg.pretrain.seq_len},
        "metrics": {"loss_first": round(first, 4), "loss_last": round(last, 4),
                    "val_loss": result.get("val_loss"),
                    "tokens_per_s": round(sum(h["tokens_per_s"] for h in steady) / len(steady), 1),
                    "flops_per_token": fpt, "flops_per_token_formula": "6N + 12 * layers * hidden * seq_len",
                    "threads": torch.get_num_threads(),
                    "mfu": round(sum(h["mfu"] for h in steady) / len(steady), 4),
                    "peak_flops": result["peak_flops"], "peak_flops_source": result["peak_flops_source"],
                    "peak_mem_mb": history[-1]["peak_mem_mb"]},
        "backend": cfg.pretrain.backend,
        "resumed_from": result["resumed_from"],
    }
