"""Pretraining with a plain PyTorch loop (nanoGPT-style) on a packed token stream.

- tokens: the `.bin` of the indexed dataset (`kollm.indexed_data`): every curated document
  + </s>, back to back
- batches: random windows of seq_len+1 tokens from a seeded generator (resumable). Every
  rank draws the same *global* batch and trains on its own slice, so N ranks see exactly
  the data one process would, and one generator state describes the run
- loss: the LM head and cross-entropy fused, a chunk of tokens at a time (`kollm.losses`),
  and eager attention on CPUs: 1.8x the tokens/s of the plain loop on 2 cores
  (benchmarks/results/pretrain_cpu.json)
- distributed: under torchrun (WORLD_SIZE > 1) the model is wrapped in DDP or FSDP2
  (`pretrain.strategy`), gloo on CPU and nccl on GPUs
- checkpoints: safetensors weights + optimizer state + trainer state, written to a temp
  folder and renamed, so a killed run never leaves a half checkpoint that looks valid; the
  trainer state lists every file's size, so a checkpoint truncated later (a full disk, a
  partial copy) is skipped with a warning and the run resumes from the one before
"""

from __future__ import annotations

import contextlib
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
from kollm.io import write_json
from kollm.losses import linear_cross_entropy


def get_batch(tokens: np.ndarray, batch_size: int, seq_len: int, gen: torch.Generator, rank: int = 0,
              world: int = 1):
    """This rank's rows of the global batch (every rank draws the same starts from `gen`)."""
    starts = torch.randint(0, len(tokens) - seq_len - 1, (batch_size,), generator=gen).tolist()
    per_rank = batch_size // world
    mine = starts[rank * per_rank: (rank + 1) * per_rank]
    rows = np.stack([tokens[s: s + seq_len + 1].astype(np.int64) for s in mine])
    x = torch.from_numpy(rows)
    return x[:, :-1], x[:, 1:]


def lr_at(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def check_batch_split(cfg: PretrainConfig, data_parallel: int) -> None:
    """Both loops: the global batch must split into equal rows per data-parallel rank, and those into
    whole micro-batches."""
    per_rank = cfg.batch_size // data_parallel
    if cfg.batch_size % data_parallel or (cfg.micro_batch_size and per_rank % cfg.micro_batch_size):
        raise ValueError(f"pretrain.batch_size={cfg.batch_size} must split into {data_parallel} data-parallel ranks "
                         f"of whole micro-batches of {cfg.micro_batch_size or 'any size'}")


def checkpoint_due(step: int, cfg: PretrainConfig) -> bool:
    """Every checkpoint_every steps and at the last one; never with checkpoint_every=0 (benchmarks)."""
    return cfg.checkpoint_every > 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps)


def make_optimizer(model, cfg: PretrainConfig):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


# ---- checkpoints ----------------------------------------------------------------------

def _file_sizes(folder: str) -> dict[str, int]:
    return {name: os.path.getsize(os.path.join(folder, name)) for name in sorted(os.listdir(folder))
            if name != "trainer_state.json"}


def commit_checkpoint(tmp: str, final: str, state: dict) -> str:
    """Record the files' sizes in trainer_state.json, then rename tmp -> final (atomic)."""
    write_json(os.path.join(tmp, "trainer_state.json"), {**state, "files": _file_sizes(tmp)})
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def save_checkpoint(ckpt_root: str, step: int, model_state: dict, optim_state: dict, gen: torch.Generator) -> str:
    from safetensors.torch import save_file

    final = os.path.join(ckpt_root, f"step_{step:07d}")
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


def checkpoint_problem(path: str) -> str | None:
    """Why the checkpoint folder cannot be resumed from, or None when it is complete."""
    state_path = os.path.join(path, "trainer_state.json")
    if not os.path.exists(state_path):
        return "no trainer_state.json (killed while writing?)"
    try:
        state = json.load(open(state_path))
    except (OSError, json.JSONDecodeError):
        return "unreadable trainer_state.json"
    for name, size in state.get("files", {}).items():
        file = os.path.join(path, name)
        if not os.path.exists(file):
            return f"{name} is missing"
        if os.path.isfile(file) and os.path.getsize(file) != size:
            return f"{name} is truncated ({os.path.getsize(file)} of {size} bytes)"
    return None


def latest_checkpoint(ckpt_root: str, warn=print) -> str | None:
    """Newest complete checkpoint; `.tmp` folders and truncated checkpoints are skipped (with a warning)."""
    if not os.path.isdir(ckpt_root):
        return None
    for name in sorted((d for d in os.listdir(ckpt_root) if d.startswith("step_") and not d.endswith(".tmp")),
                       reverse=True):
        path = os.path.join(ckpt_root, name)
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        warn(f"warning: skipping checkpoint {path}: {problem}")
    return None


def load_weights(model, path: str) -> None:
    """safetensors weights into `model`; tied weights stored once are fine, anything else missing is not."""
    from safetensors.torch import load_file

    missing, unexpected = model.load_state_dict(load_file(path), strict=False)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"{path}: does not match the model (missing {missing}, unexpected {unexpected})")
    if tied:
        model.tie_weights()


# ---- training -------------------------------------------------------------------------

def autocast(precision: str):
    """bf16 autocast for matmuls (weights, optimizer and loss stay fp32), or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    return torch.autocast(device_type="cuda" if torch.cuda.is_available() else "cpu", dtype=torch.bfloat16)


@torch.no_grad()
def evaluate_loss(model, tokens: np.ndarray, batch_size: int, seq_len: int, batches: int = 4, seed: int = 0,
                  device: str | torch.device = "cpu") -> float:
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    losses = [model(input_ids=x.to(device), labels=x.to(device)).loss.item()  # HF shifts labels itself
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


class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when run plainly)."""

    def __init__(self):
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.device = torch.device(f"cuda:{self.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        if self.world > 1 and not torch.distributed.is_initialized():
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.item() / self.world


class CausalLMLoss(torch.nn.Module):
    """The mean next-token loss of a HF causal LM, as one module: what DDP/FSDP wrap and the loop calls.

    loss_chunk > 0: the decoder gives hidden states and the LM head's weight goes into the fused,
    chunked loss (`kollm.losses`), so the [tokens, vocab] logits are never built; 0: the LM's own
    logits and F.cross_entropy. Holds no parameters of its own: its state is the LM's under `lm.`.
    """

    def __init__(self, lm, loss_chunk: int):
        super().__init__()
        self.lm = lm
        self.loss_chunk = loss_chunk

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not self.loss_chunk:
            logits = self.lm(input_ids=input_ids).logits
            return torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), labels.reshape(-1))
        hidden = self.lm.model(input_ids=input_ids).last_hidden_state
        return linear_cross_entropy(hidden.flatten(0, 1), self.lm.lm_head.weight, labels.reshape(-1),
                                    chunk_size=self.loss_chunk)


def attention_kernel(requested: str, device: torch.device) -> str:
    """The HF attention implementation to train with: `auto` is eager on CPUs, sdpa on GPUs."""
    if requested == "auto":
        return "sdpa" if device.type == "cuda" else "eager"
    return requested


def wrap(lm, cfg: PretrainConfig, dist: Distributed):
    """The LM and its loss (`CausalLMLoss`), in DDP or FSDP2 under torchrun, bare on one process."""
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
    if cfg.strategy == "ddp":
        return torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None)
    raise ValueError(f"pretrain.strategy must be ddp or fsdp, not {cfg.strategy!r}")


_LM_PREFIX = "lm."  # CausalLMLoss's name for the LM: FSDP's full state dicts are keyed through it


def _full_states(lm, net, optimizer, strategy: str, dist: Distributed):
    """(LM state with HF names, optimizer state) as whole tensors, for a checkpoint rank 0 writes."""
    if dist.world > 1 and strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        weights, optim_state = get_state_dict(net, optimizer,
                                              options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return {name.removeprefix(_LM_PREFIX): t for name, t in weights.items()}, optim_state
    return lm.state_dict(), optimizer.state_dict()


def _load_full_states(path: str, lm, net, optimizer, strategy: str, dist: Distributed) -> None:
    if dist.world > 1 and strategy == "fsdp":
        from safetensors.torch import load_file
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        weights = load_file(os.path.join(path, "model.safetensors"))
        if "lm_head.weight" not in weights and "model.embed_tokens.weight" in weights:
            weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
        set_state_dict(net, optimizer, model_state_dict={_LM_PREFIX + name: t for name, t in weights.items()},
                       optim_state_dict=torch.load(os.path.join(path, "optimizer.pt"), weights_only=True),
                       options=StateDictOptions(full_state_dict=True))
        return
    load_weights(lm, os.path.join(path, "model.safetensors"))
    optimizer.load_state_dict(torch.load(os.path.join(path, "optimizer.pt"), weights_only=True))


def forward_backward(net, x: torch.Tensor, y: torch.Tensor, micro_batch_size: int, precision: str) -> torch.Tensor:
    """The mean loss of this rank's rows, gradients accumulated over micro-batches of `micro_batch_size`
    rows (0: all rows at once). Under DDP/FSDP2 the gradients are synchronised once, in the last
    micro-batch's backward pass."""
    size = micro_batch_size or len(x)
    count = len(x) // size
    total = torch.zeros((), device=x.device)
    for i in range(count):
        sync = i == count - 1
        rows = slice(i * size, (i + 1) * size)
        accumulate = isinstance(net, torch.nn.parallel.DistributedDataParallel) and not sync
        if hasattr(net, "set_requires_gradient_sync"):  # FSDP2
            net.set_requires_gradient_sync(sync)
        with net.no_sync() if accumulate else contextlib.nullcontext():
            with autocast(precision):
                loss = net(x[rows], y[rows]) / count  # equal-sized micro-batches: the mean of means
            loss.backward()
        total += loss.detach()
    return total


class StopRequested:
    """SIGTERM/SIGUSR1 (Slurm preemption or time limit): checkpoint at the next step, then exit."""

    def __init__(self):
        import signal

        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass

    def _handle(self, signum, frame):
        self.requested = True


def reset_metrics(metrics_path: str, resumed_from: str | None, step: int) -> None:
    """Rank 0, at start: keep the log lines up to the resumed checkpoint (no duplicated steps), or start empty."""
    if resumed_from:
        print(f"resumed from {resumed_from} (step {step})", flush=True)
        if os.path.exists(metrics_path):
            lines = [l for l in open(metrics_path) if json.loads(l)["step"] <= step]
            open(metrics_path, "w").writelines(lines)
    elif os.path.exists(metrics_path):
        os.unlink(metrics_path)


def train(model, tokens: np.ndarray, cfg: PretrainConfig, out_dir: str, flops_per_token: float,
          val_tokens: np.ndarray | None = None) -> dict:
    """Train to cfg.steps, resuming from the newest valid checkpoint in out_dir/checkpoints.

    Under torchrun every rank calls this; rank 0 writes logs and checkpoints.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dist = Distributed()
    check_batch_split(cfg, dist.world)
    ckpt_root = os.path.join(out_dir, "checkpoints")
    os.makedirs(out_dir, exist_ok=True)
    metrics_path = os.path.join(out_dir, "metrics.jsonl")
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    resumed_from = latest_checkpoint(ckpt_root, warn=print if dist.main else (lambda *_: None))
    net = wrap(model, cfg, dist)
    optimizer = make_optimizer(net, cfg)
    if resumed_from:
        _load_full_states(resumed_from, model, net, optimizer, cfg.strategy, dist)
        gen.set_state(torch.load(os.path.join(resumed_from, "rng.pt"), weights_only=True)["generator"])
        step = json.load(open(os.path.join(resumed_from, "trainer_state.json")))["step"]
    if dist.main:
        reset_metrics(metrics_path, resumed_from, step)
    tokens_per_step = cfg.batch_size * cfg.seq_len  # global, all ranks together
    peak, peak_source = mfu.peak_flops(cfg.precision, dist.device.type)
    board = _tensorboard(os.path.join(out_dir, "tensorboard")) if dist.main else None
    stop = StopRequested()
    net.train()
    bar = tqdm(total=cfg.steps, initial=step, desc="pretrain", unit="step", mininterval=2, disable=not dist.main)
    t_last, tok_since = time.perf_counter(), 0
    last = {}
    log = open(metrics_path, "a") if dist.main else None
    while step < cfg.steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        x, y = get_batch(tokens, cfg.batch_size, cfg.seq_len, gen, dist.rank, dist.world)
        x, y = x.to(dist.device), y.to(dist.device)
        optimizer.zero_grad(set_to_none=True)
        loss = forward_backward(net, x, y, cfg.micro_batch_size, cfg.precision)
        grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1
        tok_since += tokens_per_step
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            mean_loss = dist.mean(loss.item())
            dt = time.perf_counter() - t_last
            tps = tok_since / dt
            last = {"step": step, "loss": round(mean_loss, 4), "lr": group["lr"],
                    "grad_norm": round(float(grad_norm), 4), "tokens_per_s": round(tps, 1),
                    "tflops": round(tps * flops_per_token / 1e12, 4),
                    "mfu": round(tps * flops_per_token / (peak * dist.world), 4),
                    "peak_mem_mb": round(mfu.peak_memory_mb(dist.device.type), 1),
                    "tokens_seen": step * tokens_per_step}
            if log:
                log.write(json.dumps(last) + "\n")
                log.flush()
            if board:
                for key in ("loss", "lr", "grad_norm", "tokens_per_s", "mfu", "peak_mem_mb"):
                    board.add_scalar(f"train/{key}", last[key], step)
                board.flush()
            bar.set_postfix(loss=f"{last['loss']:.3f}", tok_s=f"{tps:,.0f}")
            t_last, tok_since = time.perf_counter(), 0
        # any rank asked to stop -> all stop at this step (one collective; free on one process)
        stopping = dist.mean(float(stop.requested)) > 0
        if checkpoint_due(step, cfg) or stopping:
            model_state, optim_state = _full_states(model, net, optimizer, cfg.strategy, dist)
            if dist.main:
                save_checkpoint(ckpt_root, step, model_state, optim_state, gen)
            dist.barrier()
        if stopping:
            if dist.main:
                print(f"stop requested (SIGTERM/SIGUSR1): checkpoint at step {step} saved; "
                      "rerun (or let Slurm requeue) to continue", flush=True)
            break
    bar.close()
    if log:
        log.close()
    if board:
        board.close()
    history = [json.loads(l) for l in open(metrics_path)] if dist.main else []
    result = {"steps": step, "resumed_from": resumed_from, "history": history, "stopped_early": step < cfg.steps,
              "peak_flops": peak, "peak_flops_source": peak_source, "world_size": dist.world}
    if val_tokens is not None and len(val_tokens) > cfg.seq_len + 1:
        # every rank: under FSDP the forward pass gathers shards from all of them
        result["val_loss"] = round(evaluate_loss(model, val_tokens, cfg.batch_size, cfg.seq_len,
                                                 device=dist.device), 4)
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
