"""The finetune stage's settings: tasks, method (what trains), head (how the model answers), backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kollm.pretrain.config import Precision

FinetuneMethod = Literal["full", "lora", "dora", "waveft", "prompt_tuning", "qlora", "ia3"]  # kollm/finetune/methods/
FinetuneHead = Literal["lm", "cls"]  # lm: the causal LM answers a label word; cls: a classification head
FinetuneBackend = Literal["hf", "automodel"]  # HF PEFT + kollm's loop, or NeMo AutoModel (.venv-automodel)
FinetuneTask = Literal["nsmc", "klue_nli", "hate"]


@dataclass
class FinetuneConfig:
    tasks: list[FinetuneTask] = field(default_factory=lambda: ["nsmc", "klue_nli", "hate"])
    method: FinetuneMethod = "lora"
    head: FinetuneHead = "lm"
    backend: FinetuneBackend = "hf"
    examples_per_class: int = 4000  # train rows per label (fewer if a task has fewer); 0 = all
    epochs: int = 1
    min_steps: int = 0  # at least this many steps: more passes over a small task's rows
    batch_size: int = 32
    lr: float = 2e-3  # adapters: LoRA, DoRA, WaveFT, QLoRA
    full_lr: float = 3e-4  # full fine-tuning
    prompt_lr: float = 3e-2  # prompt tuning: soft prompts need a much larger step
    # IA3: one scale per channel, started at 1, needs a far larger step: on NSMC's validation split (laptop base,
    # 2,000 rows, 126 steps) 1e-2 stayed at chance (0.500), 3e-2 0.702, 1e-1 0.772, 3e-1 0.775
    ia3_lr: float = 1e-1
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    waveft_n_frequency: int = 2592  # per layer; capped at the smallest targeted layer's d_in * d_out
    prompt_tokens: int = 16
    max_len: int = 96
    # bf16 autocast with fp32 weights, as pretraining: 1.6x the examples/s of fp32 on these AMX cores
    # (h256-L4, batch 32: 145 vs 88); the hf backend only
    precision: Precision = "bf16"
    seed: int = 1234
    # backend automodel: the interpreter of NeMo AutoModel's environment; empty = the repo's .venv-automodel
    automodel_python: str = ""
