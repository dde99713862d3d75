"""Stage 4, pretrain: pack the curated corpus, train a Llama from scratch, save a HF model."""

from __future__ import annotations

import os

from kollm.config import PipelineConfig, validate
from kollm.errors import KollmError
from kollm.stages.runner import stage_dir


def run(cfg: PipelineConfig, out: str) -> dict:
    if cfg.pretrain.backend != "torch":
        raise KollmError(f"pretrain.backend={cfg.pretrain.backend!r} is not available in this build; "
                         "use pretrain.backend=torch")
    import torch
    from transformers import AutoTokenizer

    from kollm import pretrain
    from kollm.model import build_model, count_params, flops_per_token

    validate(cfg)
    tokenizer = AutoTokenizer.from_pretrained(stage_dir(cfg, "tokenizer"))
    curate = stage_dir(cfg, "curate")
    train_bin, val_bin = os.path.join(out, "train_tokens.bin"), os.path.join(out, "val_tokens.bin")
    if not os.path.exists(train_bin + ".json"):
        pretrain.pack_corpus(os.path.join(curate, "corpus.jsonl"), tokenizer, train_bin,
                             rating_in_text=cfg.pretrain.rating_in_text)
    if not os.path.exists(val_bin + ".json"):
        pretrain.pack_corpus(os.path.join(curate, "heldout.jsonl"), tokenizer, val_bin)
    tokens, val_tokens = pretrain.load_tokens(train_bin), pretrain.load_tokens(val_bin)
    model = build_model(cfg.model, tokenizer, seed=cfg.pretrain.seed)
    fpt = flops_per_token(model, cfg.pretrain.seq_len)
    result = pretrain.train(model, tokens, cfg.pretrain, out, fpt, val_tokens=val_tokens)
    history = result.pop("history")
    final = os.path.join(out, "model")
    model.save_pretrained(final, safe_serialization=True)
    tokenizer.save_pretrained(final)
    pretrain.plot_loss(history, os.path.join(out, "loss.png"))
    window = max(1, len(history) // 10)
    first = sum(h["loss"] for h in history[:window]) / window
    last = sum(h["loss"] for h in history[-window:]) / window
    steady = history[1:] or history  # the first log window includes start-up
    return {
        "outputs": {"model_dir": os.path.abspath(final), "loss_png": os.path.abspath(os.path.join(out, "loss.png")),
                    "metrics": os.path.abspath(os.path.join(out, "metrics.jsonl"))},
        "counts": {"train_tokens": int(len(tokens)), "val_tokens": int(len(val_tokens)),
                   "parameters": count_params(model), "steps": result["steps"],
                   "tokens_seen": result["steps"] * cfg.pretrain.batch_size * cfg.pretrain.seq_len},
        "metrics": {"loss_first": round(first, 4), "loss_last": round(last, 4),
                    "val_loss": result.get("val_loss"), "tokens_per_s": round(sum(h["tokens_per_s"] for h in steady) / len(steady), 1),
                    "flops_per_token": fpt, "threads": torch.get_num_threads(),
                    "mfu": round(sum(h["mfu"] for h in steady) / len(steady), 4),
                    "peak_flops": result["peak_flops"], "peak_flops_source": result["peak_flops_source"],
                    "peak_mem_mb": history[-1]["peak_mem_mb"]},
        "resumed_from": result["resumed_from"],
    }
