"""Pretraining with a plain PyTorch loop (nanoGPT-style) on a packed token stream.

- tokens: the `.bin` of the indexed dataset (`kollm.pretrain.indexed_data`): every curated document
  + </s>, back to back
- batches: random windows of seq_len+1 tokens from a seeded generator (resumable). Every
  rank draws the same *global* batch and trains on its own slice, so N ranks see exactly
  the data one process would, and one generator state describes the run
- loss: the LM head and cross-entropy fused, a chunk of tokens at a time (`kollm.pretrain.losses`),
  and eager attention on CPUs: 1.8x the tokens/s of the plain loop on 2 cores
  (benchmarks/results/pretrain_cpu.json)
- distributed: under torchrun (WORLD_SIZE > 1) the model is wrapped in DDP or FSDP2
  (`pretrain.strategy`), gloo on CPU and nccl on GPUs
- checkpoints: safetensors weights + optimizer state + trainer state, written to a temp
  folder and renamed, so a killed run never leaves a half checkpoint that looks valid; the
  trainer state lists every file's size, so a checkpoint truncated later (a full disk, a
  partial copy) is skipped with a warning and the run resumes from the one before
- the frame both backends share (ranks, LR schedule, checkpoint commit and validity, stop
  signals, metrics rows, HF export): `kollm.pretrain.frame`; this module is its `torch` backend
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterable

import numpy as np
import torch
from tqdm import tqdm

from kollm.models.config import ModelConfig
from kollm.pretrain import mfu
from kollm.pretrain.config import PretrainConfig
from kollm.pretrain.frame import (
    Distributed,
    MetricsLog,
    StopSignals,
    autocast,
    checkpoint_due,
    checkpoint_path,
    checkpoint_step,
    commit_checkpoint,
    latest_checkpoint,
    lr_at,
)
from kollm.pretrain.losses import linear_cross_entropy


def get_batch(tokens: np.ndarray, batch_size: int, seq_len: int, gen: torch.Generator, rank: int = 0, world: int = 1):
    """This rank's rows of the global batch (every rank draws the same starts from `gen`)."""
    starts = torch.randint(0, len(tokens) - seq_len - 1, (batch_size,), generator=gen).tolist()
    per_rank = batch_size // world
    mine = starts[rank * per_rank : (rank + 1) * per_rank]
    rows = np.stack([tokens[s : s + seq_len + 1].astype(np.int64) for s in mine])
    x = torch.from_numpy(rows)
    return x[:, :-1], x[:, 1:]


def make_optimizer(model, cfg: PretrainConfig):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )


# ---- checkpoints ----------------------------------------------------------------------


def save_checkpoint(ckpt_root: str, step: int, model_state: dict, optim_state: dict, gen: torch.Generator) -> str:
    from safetensors.torch import save_file

    final = checkpoint_path(ckpt_root, step)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    # tied embeddings: store each tensor once, as save_model does
    seen, unique = set(), {}
    for name, tensor in model_state.items():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        unique[name] = tensor.detach().contiguous().cpu()
    save_file(unique, os.path.join(tmp, "model.safetensors"))
    torch.save(optim_state, os.path.join(tmp, "optimizer.pt"))
    torch.save({"generator": gen.get_state()}, os.path.join(tmp, "rng.pt"))
    return commit_checkpoint(tmp, final, {"step": step})


def load_weights(model, path: str) -> None:
    """safetensors weights into `model`; tied weights stored once are fine, anything else missing is not."""
    from safetensors.torch import load_file

    missing, unexpected = model.load_state_dict(load_file(path), strict=False)
    head = model.get_output_embeddings()  # lm_head (Llama), head (RWKV)
    tied = (
        {f"{n}.weight" for n, m in model.named_modules() if m is head}
        if getattr(model.config, "tie_word_embeddings", False)
        else set()
    )
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"{path}: does not match the model (missing {missing}, unexpected {unexpected})")
    if tied:
        model.tie_weights()


# ---- training -------------------------------------------------------------------------


@torch.no_grad()
def evaluate_loss(
    model,
    tokens: np.ndarray,
    batch_size: int,
    seq_len: int,
    batches: int = 4,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> float:
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    losses = [
        model(input_ids=x.to(device), labels=x.to(device)).loss.item()  # HF shifts labels itself
        for x, _ in (get_batch(tokens, batch_size, seq_len, gen) for _ in range(batches))
    ]
    model.train()
    return float(np.mean(losses))


class CausalLMLoss(torch.nn.Module):
    """The mean next-token loss of a HF causal LM, as one module: what DDP/FSDP wrap and the loop calls.

    loss_chunk > 0: the decoder gives hidden states and the LM head's weight goes into the fused,
    chunked loss (`kollm.pretrain.losses`), so the [tokens, vocab] logits are never built; 0: the LM's own
    logits and F.cross_entropy. Holds no parameters of its own: its state is the LM's under `lm.`.
    """

    def __init__(self, lm, loss_chunk: int):
        super().__init__()
        self.lm = lm
        self.loss_chunk = loss_chunk
        # MoEs with a load-balancing loss (Qwen3-MoE) add it as HF's own forward does, with its coefficient
        balance = getattr(sys.modules[type(lm).__module__], "load_balancing_loss_func", None)
        self.balance = balance if getattr(lm, "router_aux_loss_coef", 0) > 0 else None

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        extra = {"output_router_logits": True} if self.balance else {}
        if not self.loss_chunk:
            out = self.lm(input_ids=input_ids, **extra)
            loss = torch.nn.functional.cross_entropy(
                out.logits.float().view(-1, out.logits.size(-1)), labels.reshape(-1)
            )
        else:
            # the decoder under the LM head (HF: base_model is .model, .backbone (Mamba) or .rwkv; course.scratch.llama: .model)
            out = self.lm.base_model(input_ids=input_ids, **extra)
            loss = linear_cross_entropy(
                out.last_hidden_state.flatten(0, 1),
                self.lm.get_output_embeddings().weight,
                labels.reshape(-1),
                chunk_size=self.loss_chunk,
            )
        if self.balance:
            loss = loss + self.lm.router_aux_loss_coef * self.balance(
                out.router_logits, self.lm.num_experts, self.lm.num_experts_per_tok
            )
        return loss


def attention_kernel(requested: str, device: torch.device) -> str:
    """The HF attention implementation to train with: `auto` is eager on CPUs, sdpa on GPUs."""
    if requested == "auto":
        return "sdpa" if device.type == "cuda" else "eager"
    return requested


def wrap(lm, cfg: PretrainConfig, dist: Distributed):
    """The LM and its loss (`CausalLMLoss`), in DDP or FSDP2 under torchrun, bare on one process."""
    if hasattr(lm, "set_attn_implementation"):  # HF's Llama; course.scratch.llama always runs sdpa
        lm.set_attn_implementation(attention_kernel(cfg.attention, dist.device))
    lm.to(dist.device)
    net = CausalLMLoss(lm, cfg.loss_chunk)
    if dist.world == 1:
        return net
    if cfg.strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in lm.model.layers:
            fully_shard(layer)
        return fully_shard(net)  # the root: embeddings (= the tied LM head) and the final norm
    return torch.nn.parallel.DistributedDataParallel(  # ddp
        net, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None
    )


_LM_PREFIX = "lm."  # CausalLMLoss's name for the LM: FSDP's full state dicts are keyed through it


def _full_states(lm, net, optimizer, strategy: str, dist: Distributed):
    """(LM state with HF names, optimizer state) as whole tensors, for a checkpoint rank 0 writes."""
    if dist.world > 1 and strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        weights, optim_state = get_state_dict(
            net, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
        return {name.removeprefix(_LM_PREFIX): t for name, t in weights.items()}, optim_state
    return lm.state_dict(), optimizer.state_dict()


def _load_full_states(path: str, lm, net, optimizer, strategy: str, dist: Distributed) -> None:
    if dist.world > 1 and strategy == "fsdp":
        from safetensors.torch import load_file
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        weights = load_file(os.path.join(path, "model.safetensors"))
        if "lm_head.weight" not in weights and "model.embed_tokens.weight" in weights:
            weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
        set_state_dict(
            net,
            optimizer,
            model_state_dict={_LM_PREFIX + name: t for name, t in weights.items()},
            optim_state_dict=torch.load(os.path.join(path, "optimizer.pt"), weights_only=True),
            options=StateDictOptions(full_state_dict=True),
        )
        return
    load_weights(lm, os.path.join(path, "model.safetensors"))
    optimizer.load_state_dict(torch.load(os.path.join(path, "optimizer.pt"), weights_only=True))


def forward_backward(net, x: torch.Tensor, y: torch.Tensor, micro_batch_size: int, precision: str) -> torch.Tensor:
    """The mean loss of this rank's rows, gradients accumulated over micro-batches of `micro_batch_size`
    rows (0: all rows at once; a last, smaller micro-batch takes the rows left over, none is dropped). Under
    DDP/FSDP2 the gradients are synchronised once, in the last micro-batch's backward pass."""
    size = micro_batch_size or len(x)
    chunks = [slice(start, min(start + size, len(x))) for start in range(0, len(x), size)]
    total = torch.zeros((), device=x.device)
    for i, rows in enumerate(chunks):
        sync = i == len(chunks) - 1
        accumulate = isinstance(net, torch.nn.parallel.DistributedDataParallel) and not sync
        if hasattr(net, "set_requires_gradient_sync"):  # FSDP2
            net.set_requires_gradient_sync(sync)
        with net.no_sync() if accumulate else contextlib.nullcontext():
            with autocast(precision):
                loss = net(x[rows], y[rows])
                # the mean over all rows: equal micro-batches, the mean of their means; else each weighted by its rows
                loss = loss / len(chunks) if len(x) % size == 0 else loss * ((rows.stop - rows.start) / len(x))
            loss.backward()
        total += loss.detach()
    return total


def train_step(net, optimizer, x: torch.Tensor, y: torch.Tensor, step: int, cfg: PretrainConfig):
    """One optimiser step (the `step`-th, from 0): the schedule's learning rate, the loss over micro-batches,
    gradient clipping. Returns (loss, gradient norm) as tensors."""
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    optimizer.zero_grad(set_to_none=True)
    loss = forward_backward(net, x, y, cfg.micro_batch_size, cfg.precision)
    grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
    optimizer.step()
    return loss, grad_norm


def train_on(
    model, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], steps: int, cfg: PretrainConfig
) -> list[float]:
    """Train `model` (a causal LM) for `steps` steps on `batches` of (input ids, target ids), in this process,
    with pretraining's optimiser, schedule, micro-batching and clipping; the loss of each step. Code written
    from scratch checks its own training loop against this one."""
    dist = Distributed()
    net = wrap(model, cfg, dist)
    optimizer = make_optimizer(net, cfg)
    net.train()
    losses = []
    for step, (x, y) in zip(range(steps), batches, strict=False):
        loss, _ = train_step(net, optimizer, x.to(dist.device), y.to(dist.device), step, cfg)
        losses.append(loss.item())
    if len(losses) < steps:
        raise ValueError(f"the batches ran out after {len(losses)} of {steps} steps")
    return losses


def train_loop(
    model,
    tokens: np.ndarray,
    cfg: PretrainConfig,
    out_dir: str,
    flops_per_token: float,
    val_tokens: np.ndarray | None = None,
) -> dict:
    """Train `model` to cfg.steps on a packed token stream, resuming from the newest valid checkpoint in
    out_dir/checkpoints. Under torchrun every rank calls this; rank 0 writes logs and checkpoints.
    """
    # first: a signal during set-up stops the run after its first step, not mid-write
    with StopSignals() as stop:
        return _train_loop(stop, model, tokens, cfg, out_dir, flops_per_token, val_tokens)


def _train_loop(
    stop: StopSignals,
    model,
    tokens: np.ndarray,
    cfg: PretrainConfig,
    out_dir: str,
    flops_per_token: float,
    val_tokens: np.ndarray | None,
) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dist = Distributed()
    ckpt_root = os.path.join(out_dir, "checkpoints")
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    resumed_from = latest_checkpoint(ckpt_root, warn=dist.warn)
    net = wrap(model, cfg, dist)
    optimizer = make_optimizer(net, cfg)
    if resumed_from:
        _load_full_states(resumed_from, model, net, optimizer, cfg.strategy, dist)
        gen.set_state(torch.load(os.path.join(resumed_from, "rng.pt"), weights_only=True)["generator"])
        step = checkpoint_step(resumed_from)
    log = MetricsLog(out_dir, dist, resumed_from, step)
    tokens_per_step = cfg.batch_size * cfg.seq_len  # global, all ranks together
    peak, peak_source = mfu.peak_flops(cfg.precision, dist.device.type)
    net.train()
    bar = tqdm(total=cfg.steps, initial=step, desc="pretrain", unit="step", mininterval=2, disable=not dist.main)
    t_last, tok_since = time.perf_counter(), 0
    checkpoint = resumed_from
    while step < cfg.steps:
        x, y = get_batch(tokens, cfg.batch_size, cfg.seq_len, gen, dist.rank, dist.world)
        loss, grad_norm = train_step(net, optimizer, x.to(dist.device), y.to(dist.device), step, cfg)
        step += 1
        tok_since += tokens_per_step
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            tps = tok_since / (time.perf_counter() - t_last)
            row = MetricsLog.row(
                step,
                dist.mean(loss.item()),
                optimizer.param_groups[0]["lr"],
                grad_norm,
                tps,
                flops_per_token,
                peak,
                dist.world,
                step * tokens_per_step,
                mfu.peak_memory_mb(dist.device.type),
            )
            log.write(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{tps:,.0f}")
            t_last, tok_since = time.perf_counter(), 0
        stopping = stop.requested(dist)
        if checkpoint_due(step, cfg, stopping):
            model_state, optim_state = _full_states(model, net, optimizer, cfg.strategy, dist)
            if dist.main:
                save_checkpoint(ckpt_root, step, model_state, optim_state, gen)
            checkpoint = checkpoint_path(ckpt_root, step)
            dist.barrier()
        if stopping:
            StopSignals.announce(dist, step)
            break
    bar.close()
    result = {
        "steps": step,
        "resumed_from": resumed_from,
        "history": log.close(),
        "checkpoint": checkpoint,
        "stopped_early": step < cfg.steps,
        "peak_flops": peak,
        "peak_flops_source": peak_source,
        "world_size": dist.world,
    }
    if val_tokens is not None and len(val_tokens) > cfg.seq_len + 1:
        # every rank: under FSDP the forward pass gathers shards from all of them
        result["val_loss"] = round(evaluate_loss(model, val_tokens, cfg.batch_size, cfg.seq_len, device=dist.device), 4)
    return result


# ---- the backend interface (kollm.pretrain.frame) -------------------------------------------


def train(
    model_cfg: ModelConfig, p: PretrainConfig, prefixes: dict, tokenizer, out_dir: str, flops_per_token: float
) -> dict:
    """Every rank: the HF Llama built from the config (seeded), trained on the indexed data's token stream."""
    from kollm.models import build_model
    from kollm.pretrain import indexed_data

    model = build_model(model_cfg, tokenizer, seed=p.seed)
    val = indexed_data.load_tokens(prefixes["val"]) if "val" in prefixes else None
    return train_loop(model, indexed_data.load_tokens(prefixes["train"]), p, out_dir, flops_per_token, val_tokens=val)


def to_hf(checkpoint: str, model_cfg: ModelConfig, tokenizer):
    """The checkpoint's full weights in a fresh HF model: one path for 1 process, DDP and FSDP. A
    `model.impl=scratch` checkpoint has HF Llama's names and shapes, so it loads the same way."""
    from dataclasses import replace

    from kollm.models import build_model

    model = build_model(replace(model_cfg, impl="hf"), tokenizer)
    load_weights(model, os.path.join(checkpoint, "model.safetensors"))
    return model, {}


def teardown() -> None:
    """Nothing to leave: rank 0 exports from the checkpoint file, without a process group."""
