"""The model's shape (`model.*`): width, depth, heads, and which architecture and implementation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Arch = Literal["llama", "mamba2", "mamba", "rwkv", "moe", "mla_moe", "hybrid"]  # kollm/models/architectures.py
ModelImpl = Literal["hf", "scratch"]  # HF transformers' Llama, or course/scratch/llama.py (the same weights)


@dataclass
class ModelConfig:
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 704
    max_seq_len: int = 256
    # the other architectures keep hidden size and depth and match the Llama's non-embedding parameters
    arch: Arch = "llama"
    impl: ModelImpl = (
        "hf"  # scratch: the torch backend trains course/scratch/llama.py and exports it as the HF Llama it equals
    )
