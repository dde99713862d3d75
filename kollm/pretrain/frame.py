"""What both pretraining backends share, owned by neither: the loop's frame around the model.

    train_and_export(backend, ...)   every rank trains, rank 0 writes the HF folder: one place
    Distributed                      this process's rank/world/device; gloo on CPUs, nccl on GPUs
    lr_at                            warmup + cosine to min_lr_ratio
    checkpoints                      step_N.tmp -> step_N (atomic), file sizes recorded; newest valid one
    StopSignals                      SIGTERM/SIGUSR1 -> checkpoint at this step -> stop (kollm.core.errors.StoppedEarly)
    MetricsLog                       metrics.jsonl rows + TensorBoard scalars, rank 0
    summarize / loss_window          the figures a manifest reports from a metrics log
    autocast                         bf16 matmuls with fp32 weights, or fp32 (fine-tuning uses it too)

A backend is a module with the same three functions (kollm.pretrain.torch_backend: HF Llama + PyTorch loop;
kollm.pretrain.megatron.backend: megatron-core):

    train(model_cfg, p, prefixes, tokenizer, out_dir, flops_per_token) -> result dict
        every rank; result: steps, history (rank 0), checkpoint, resumed_from, stopped_early, ...
    to_hf(checkpoint, model_cfg, tokenizer) -> (LlamaForCausalLM, details dict)   rank 0, one process
    teardown() -> None   leave the backend's process groups before the one-process export
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import shutil
import signal

import torch

from kollm.core.io import read_json, write_json
from kollm.models.config import ModelConfig
from kollm.pretrain.config import PRECISIONS, PretrainConfig

BACKENDS = {"torch": "kollm.pretrain.torch_backend", "megatron": "kollm.pretrain.megatron.backend"}


def train_and_export(
    backend: str, model_cfg: ModelConfig, p: PretrainConfig, prefixes: dict, tokenizer, out_dir: str, hf_dir: str
) -> dict:
    """Train with `backend` on every rank, then (rank 0, unless stopped early) write the last checkpoint
    as a HF model folder + tokenizer: the folder every later stage loads."""
    from kollm.models import flops_per_token

    module = importlib.import_module(BACKENDS[backend])
    fpt = flops_per_token(model_cfg, len(tokenizer), p.seq_len)
    result = module.train(model_cfg, p, prefixes, tokenizer, out_dir, fpt)
    result["flops_per_token"] = fpt
    main = Distributed.rank_from_env() == 0
    module.teardown()
    if main and not result["stopped_early"]:
        hf, details = module.to_hf(result["checkpoint"], model_cfg, tokenizer)
        hf.save_pretrained(hf_dir, safe_serialization=True)
        tokenizer.save_pretrained(hf_dir)
        result["export"] = {**details, "checkpoint": os.path.abspath(result["checkpoint"])}
    return result


class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when run plainly)."""

    def __init__(self):
        self.rank = self.rank_from_env()
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.device = torch.device(f"cuda:{self.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        if self.world > 1 and not torch.distributed.is_initialized():
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @staticmethod
    def rank_from_env() -> int:
        return int(os.environ.get("RANK", 0))

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

    def warn(self, message: str) -> None:
        if self.main:
            print(message, flush=True)


def lr_at(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def checkpoint_due(step: int, cfg: PretrainConfig, stopping: bool = False) -> bool:
    """Every checkpoint_every steps, at the last one, and when stopping on a signal; never with
    checkpoint_every=0 (benchmarks calling a loop directly)."""
    return cfg.checkpoint_every > 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps or stopping)


# ---- checkpoints ----------------------------------------------------------------------


def checkpoint_path(ckpt_root: str, step: int) -> str:
    return os.path.join(ckpt_root, f"step_{step:07d}")


def _file_sizes(folder: str) -> dict[str, int]:
    return {
        name: os.path.getsize(os.path.join(folder, name))
        for name in sorted(os.listdir(folder))
        if name != "trainer_state.json"
    }


def commit_checkpoint(tmp: str, final: str, state: dict) -> str:
    """Record the files' sizes in trainer_state.json, then rename tmp -> final (atomic)."""
    write_json(os.path.join(tmp, "trainer_state.json"), {**state, "files": _file_sizes(tmp)})
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def checkpoint_problem(path: str) -> str | None:
    """Why the checkpoint folder cannot be resumed from, or None when it is complete."""
    state_path = os.path.join(path, "trainer_state.json")
    if not os.path.exists(state_path):
        return "no trainer_state.json (killed while writing?)"
    try:
        state = read_json(state_path)
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
    for name in sorted(
        (d for d in os.listdir(ckpt_root) if d.startswith("step_") and not d.endswith(".tmp")), reverse=True
    ):
        path = os.path.join(ckpt_root, name)
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        warn(f"warning: skipping checkpoint {path}: {problem}")
    return None


def checkpoint_step(path: str) -> int:
    return read_json(os.path.join(path, "trainer_state.json"))["step"]


# ---- stop signals ---------------------------------------------------------------------


class StopSignals:
    """SIGTERM/SIGUSR1 (Slurm preemption, or `--signal=USR1@120` before the time limit) ask the loop to
    checkpoint at the end of the current step and return; `requested(dist)` is one collective, so when
    any rank was signalled every rank stops at the same step."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.received, self._previous = False, {}
        for sig in self.SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass

    def _handle(self, signum, frame):
        self.received = True

    def restore(self) -> None:
        """Put the previous handlers back once training returns: a process that trains in-process and
        later forks workers (curation's pool) must not leave them deaf to the pool's SIGTERM."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self) -> StopSignals:
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def requested(self, dist: Distributed) -> bool:
        return dist.mean(float(self.received)) > 0

    @staticmethod
    def announce(dist: Distributed, step: int) -> None:
        dist.warn(
            f"stop requested (SIGTERM/SIGUSR1): checkpoint at step {step} saved; "
            "rerun (or let Slurm requeue) to continue"
        )


# ---- metrics --------------------------------------------------------------------------


class MetricsLog:
    """Rank 0's training log: one JSON row per logged step in metrics.jsonl, the same scalars in TensorBoard.

    At start it keeps the rows up to a resumed checkpoint's step (no duplicated steps) or starts empty.
    """

    BOARD_KEYS = ("loss", "lr", "grad_norm", "tokens_per_s", "mfu", "peak_mem_mb")

    def __init__(self, out_dir: str, dist: Distributed, resumed_from: str | None, step: int):
        self.path = os.path.join(out_dir, "metrics.jsonl")
        self.file = self.board = None
        if not dist.main:
            return
        if resumed_from:
            print(f"resumed from {resumed_from} (step {step})", flush=True)
            if os.path.exists(self.path):
                with open(self.path) as f:
                    kept = [line for line in f if json.loads(line)["step"] <= step]
                with open(self.path, "w") as f:
                    f.writelines(kept)
        elif os.path.exists(self.path):
            os.unlink(self.path)
        self.file = open(self.path, "a")
        self.board = _tensorboard(os.path.join(out_dir, "tensorboard"))

    @staticmethod
    def row(
        step: int,
        loss: float,
        lr: float,
        grad_norm: float,
        tokens_per_s: float,
        flops_per_token: float,
        peak_flops: float,
        world: int,
        tokens_seen: int,
        peak_mem_mb: float,
    ) -> dict:
        """The fields of one log row; MFU over every device of the job."""
        return {
            "step": step,
            "loss": round(loss, 4),
            "lr": lr,
            "grad_norm": round(float(grad_norm), 4),
            "tokens_per_s": round(tokens_per_s, 1),
            "tflops": round(tokens_per_s * flops_per_token / 1e12, 4),
            "mfu": round(tokens_per_s * flops_per_token / (peak_flops * world), 4),
            "peak_mem_mb": round(peak_mem_mb, 1),
            "tokens_seen": tokens_seen,
        }

    def write(self, row: dict) -> None:
        if self.file:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
        if self.board:
            for key in self.BOARD_KEYS:
                self.board.add_scalar(f"train/{key}", row[key], row["step"])
            self.board.flush()

    def close(self) -> list[dict]:
        """Close; rank 0 gets the whole history (resumed rows included), the other ranks []."""
        if self.board:
            self.board.close()
        if not self.file:
            return []
        self.file.close()
        return read_history(self.path)


def _tensorboard(path: str):
    """A TensorBoard writer, or None where tensorboard is not installed (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(path)


def read_history(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]


def loss_window(history: list[dict]) -> tuple[float, float]:
    """Mean loss of the first and of the last tenth of the logged steps (at least one row each)."""
    window = max(1, len(history) // 10)
    first = sum(h["loss"] for h in history[:window]) / window
    last = sum(h["loss"] for h in history[-window:]) / window
    return round(first, 4), round(last, 4)


def summarize(history: list[dict]) -> dict:
    """A pretraining log's headline figures: loss at start and end, steady-state tokens/s and MFU
    (the first log window includes start-up, so it is left out), peak memory."""
    first, last = loss_window(history)
    steady = history[1:] or history
    return {
        "loss_first": first,
        "loss_last": last,
        "tokens_per_s": round(sum(h["tokens_per_s"] for h in steady) / len(steady), 1),
        "mfu": round(sum(h["mfu"] for h in steady) / len(steady), 4),
        "peak_mem_mb": history[-1]["peak_mem_mb"],
    }


def plot_loss(history: list[dict], path: str, title: str = "pretraining loss") -> None:
    from kollm.core.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history])
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def autocast(precision: str):
    """bf16 autocast for matmuls (weights, optimizer and loss stay fp32), or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    return torch.autocast(device_type="cuda" if torch.cuda.is_available() else "cpu", dtype=torch.bfloat16)
