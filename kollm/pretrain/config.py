"""The pretrain stage's settings: backend, parallelism, precision, the optimiser and its schedule."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from kollm.core.errors import KollmError

Backend = Literal["torch", "megatron"]
Precision = Literal["bf16", "fp32"]
Strategy = Literal["ddp", "fsdp"]
Attention = Literal["auto", "eager", "sdpa"]
Fp8 = Literal["", "hybrid", "e4m3"]
PRECISIONS = typing.get_args(Precision)


@dataclass
class PretrainConfig:
    # torch: the HF Llama + a PyTorch loop (one process, or DDP/FSDP2 under torchrun);
    # megatron: megatron-core GPTModel of the same architecture, TP/PP/CP/DP (GPUs)
    backend: Backend = "torch"
    precision: Precision = "bf16"  # bf16 autocast (fp32 master weights) or fp32; CPUs with AMX run bf16 fast
    nproc_per_node: int = 1  # processes per node under torchrun: GPUs, or gloo ranks on a CPU
    strategy: Strategy = "ddp"  # torch backend with several processes: DDP, or FSDP2 fully_shard
    tensor_parallel: int = 1  # megatron backend
    pipeline_parallel: int = 1
    context_parallel: int = 1
    sequence_parallel: bool = False
    distributed_optimizer: bool = False  # megatron: shard optimizer state over data-parallel ranks
    fp8: Fp8 = ""  # megatron + Transformer Engine on Hopper: "" (off)
    # rows per forward/backward pass on each rank, gradients accumulated up to the rank's share of
    # batch_size (megatron: its pipeline schedule's micro-batches); 0 = the rank's whole share at once
    micro_batch_size: int = 0
    # torch backend: LM head + cross-entropy fused, this many tokens at a time (kollm.pretrain.losses),
    # so the [tokens, vocab] logits never exist; 0 = plain logits and F.cross_entropy
    loss_chunk: int = 256
    # torch backend attention kernel: auto = eager on CPUs (tiny preset, profiled: attention
    # forward+backward 16 ms a step, SDPA's CPU flash kernel 93 ms), sdpa on GPUs
    attention: Attention = "auto"
    # Standalone use (recipes/pretrain.py): a JSONL corpus and a HF tokenizer folder instead of
    # the run's curate and tokenizer stages. Empty: take them from the pipeline run.
    corpus: str = ""
    val_corpus: str = ""
    tokenizer_dir: str = ""
    tokenize_workers: int = 0  # 0 = one per CPU
    # Append each train-split review's rating to its text in the token stream ("… 평점: 9"):
    # the LM then learns review -> rating from every train review, not only the fine-tuning sample.
    rating_in_text: bool = True
    steps: int = 1000
    batch_size: int = 32
    seq_len: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    checkpoint_every: int = 200  # steps (and always the last); 0 = none: throughput benchmarks calling the loop
    log_every: int = 10
    seed: int = 1234
    threads: int = 0  # 0 = all cores

    def check(self) -> None:
        """This section's own rules; those that involve the model or the run's nodes are kollm.config.validate's."""
        if self.fp8 and self.backend != "megatron":
            raise KollmError("pretrain.fp8 needs pretrain.backend=megatron (Transformer Engine)")
        if self.backend == "torch" and self.tensor_parallel * self.pipeline_parallel * self.context_parallel > 1:
            raise KollmError("tensor/pipeline/context parallelism needs pretrain.backend=megatron")
        if bool(self.corpus) != bool(self.tokenizer_dir):
            raise KollmError("standalone pretraining needs both pretrain.corpus and pretrain.tokenizer_dir")
