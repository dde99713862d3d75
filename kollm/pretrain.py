"""Pretraining with a plain PyTorch loop (nanoGPT-style) on a packed token stream.

- tokens: every curated document + </s>, packed into one uint16/uint32 array on disk
- batches: random windows of seq_len+1 tokens from a seeded generator (resumable)
- checkpoints: safetensors weights + optimizer state + trainer state, written to a temp
  folder and renamed, so a killed run never leaves a half checkpoint that looks valid
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time

import numpy as np
import torch
from tqdm import tqdm

from kollm import mfu
from kollm.config import PRECISIONS, PretrainConfig
from kollm.io import read_jsonl, write_json


def document_text(doc: dict, rating_in_text: bool) -> str:
    if rating_in_text and doc.get("rating") is not None:
        return f"{doc['text']} 평점: {doc['rating']}"
    return doc["text"]


def pack_corpus(corpus_path: str, tokenizer, out_path: str, batch: int = 2000, rating_in_text: bool = False) -> int:
    """Tokenise the corpus into one flat array (documents separated by </s>); returns token count."""
    dtype = np.uint16 if len(tokenizer) < 2**16 else np.uint32
    eos = tokenizer.eos_token_id
    total = 0
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as f:
        texts = []

        def flush():
            nonlocal total
            ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
            arr = np.fromiter((t for doc in ids for t in (*doc, eos)), dtype=dtype)
            f.write(arr.tobytes())
            total += len(arr)
            texts.clear()

        for doc in tqdm(read_jsonl(corpus_path), desc="tokenize", unit="doc", mininterval=2):
            texts.append(document_text(doc, rating_in_text))
            if len(texts) >= batch:
                flush()
        if texts:
            flush()
    os.replace(tmp, out_path)
    write_json(out_path + ".json", {"dtype": np.dtype(dtype).name, "tokens": total})
    return total


def load_tokens(path: str) -> np.ndarray:
    meta = json.load(open(path + ".json"))
    return np.memmap(path, dtype=meta["dtype"], mode="r")


def get_batch(tokens: np.ndarray, batch_size: int, seq_len: int, gen: torch.Generator):
    starts = torch.randint(0, len(tokens) - seq_len - 1, (batch_size,), generator=gen)
    rows = np.stack([tokens[s: s + seq_len + 1].astype(np.int64) for s in starts.tolist()])
    x = torch.from_numpy(rows)
    return x[:, :-1], x[:, 1:]


def lr_at(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def make_optimizer(model, cfg: PretrainConfig):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


# ---- checkpoints ----------------------------------------------------------------------

def save_checkpoint(ckpt_root: str, step: int, model, optimizer, gen: torch.Generator) -> str:
    from safetensors.torch import save_model

    final = os.path.join(ckpt_root, f"step_{step:07d}")
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    save_model(model, os.path.join(tmp, "model.safetensors"))
    torch.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
    torch.save({"generator": gen.get_state()}, os.path.join(tmp, "rng.pt"))
    write_json(os.path.join(tmp, "trainer_state.json"), {"step": step})
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def latest_checkpoint(ckpt_root: str) -> str | None:
    """Newest complete checkpoint; `.tmp` folders (killed mid-write) are ignored."""
    if not os.path.isdir(ckpt_root):
        return None
    done = sorted(d for d in os.listdir(ckpt_root)
                  if d.startswith("step_") and not d.endswith(".tmp")
                  and os.path.exists(os.path.join(ckpt_root, d, "trainer_state.json")))
    return os.path.join(ckpt_root, done[-1]) if done else None


def load_checkpoint(path: str, model, optimizer, gen: torch.Generator) -> int:
    from safetensors.torch import load_model

    load_model(model, os.path.join(path, "model.safetensors"))
    optimizer.load_state_dict(torch.load(os.path.join(path, "optimizer.pt"), weights_only=True))
    gen.set_state(torch.load(os.path.join(path, "rng.pt"), weights_only=True)["generator"])
    return json.load(open(os.path.join(path, "trainer_state.json")))["step"]


# ---- training -------------------------------------------------------------------------

def autocast(precision: str):
    """bf16 autocast for matmuls (weights, optimizer and loss stay fp32), or nothing for fp32."""
    import contextlib

    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    return torch.autocast(device_type="cuda" if torch.cuda.is_available() else "cpu", dtype=torch.bfloat16)


@torch.no_grad()
def evaluate_loss(model, tokens: np.ndarray, batch_size: int, seq_len: int, batches: int = 4, seed: int = 0) -> float:
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    losses = [model(input_ids=x, labels=x).loss.item()  # HF shifts labels itself
              for x, _ in (get_batch(tokens, batch_size, seq_len, gen) for _ in range(batches))]
    model.train()
    return float(np.mean(losses))


def _tensorboard(path: str):
    """A TensorBoard writer, or None where tensorboard is not installed (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(path)


def train(model, tokens: np.ndarray, cfg: PretrainConfig, out_dir: str, flops_per_token: float,
          val_tokens: np.ndarray | None = None) -> dict:
    """Train to cfg.steps, resuming from the newest checkpoint in out_dir/checkpoints."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ckpt_root = os.path.join(out_dir, "checkpoints")
    os.makedirs(out_dir, exist_ok=True)
    metrics_path = os.path.join(out_dir, "metrics.jsonl")
    gen = torch.Generator().manual_seed(cfg.seed)
    optimizer = make_optimizer(model, cfg)
    step = 0
    resumed_from = latest_checkpoint(ckpt_root)
    if resumed_from:
        step = load_checkpoint(resumed_from, model, optimizer, gen)
        print(f"resumed from {resumed_from} (step {step})", flush=True)
        # keep only the log lines up to the checkpoint, so the curve has no duplicated steps
        if os.path.exists(metrics_path):
            lines = [l for l in open(metrics_path) if json.loads(l)["step"] <= step]
            open(metrics_path, "w").writelines(lines)
    elif os.path.exists(metrics_path):
        os.unlink(metrics_path)
    tokens_per_step = cfg.batch_size * cfg.seq_len
    peak, peak_source = mfu.peak_flops(cfg.precision)
    board = _tensorboard(os.path.join(out_dir, "tensorboard"))
    model.train()
    bar = tqdm(total=cfg.steps, initial=step, desc="pretrain", unit="step", mininterval=2)
    t_last, tok_since = time.perf_counter(), 0
    last = {}
    with open(metrics_path, "a") as log:
        while step < cfg.steps:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, cfg)
            x, y = get_batch(tokens, cfg.batch_size, cfg.seq_len, gen)
            with autocast(cfg.precision):
                logits = model(input_ids=x).logits
            loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            tok_since += tokens_per_step
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                dt = time.perf_counter() - t_last
                tps = tok_since / dt
                last = {"step": step, "loss": round(loss.item(), 4), "lr": group["lr"],
                        "grad_norm": round(float(grad_norm), 4), "tokens_per_s": round(tps, 1),
                        "tflops": round(tps * flops_per_token / 1e12, 4),
                        "mfu": round(tps * flops_per_token / peak, 4),
                        "peak_mem_mb": round(mfu.peak_memory_mb(), 1),
                        "tokens_seen": step * tokens_per_step}
                log.write(json.dumps(last) + "\n")
                log.flush()
                if board:
                    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "mfu", "peak_mem_mb"):
                        board.add_scalar(f"train/{key}", last[key], step)
                    board.flush()
                bar.set_postfix(loss=f"{last['loss']:.3f}", tok_s=f"{tps:,.0f}")
                t_last, tok_since = time.perf_counter(), 0
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save_checkpoint(ckpt_root, step, model, optimizer, gen)
    bar.close()
    if board:
        board.close()
    history = [json.loads(l) for l in open(metrics_path)]
    result = {"steps": step, "resumed_from": resumed_from, "history": history,
              "peak_flops": peak, "peak_flops_source": peak_source}
    if val_tokens is not None and len(val_tokens) > cfg.seq_len + 1:
        result["val_loss"] = round(evaluate_loss(model, val_tokens, cfg.batch_size, cfg.seq_len), 4)
    return result


def plot_loss(history: list[dict], path: str, title: str = "pretraining loss") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history])
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
