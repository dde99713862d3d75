"""What a fine-tuning method is: one record per method, in its own module of this package."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Method:
    """A fine-tuning method (`finetune.method=<name>`): what trains, how its HF PEFT config is built, what it supports.

    `peft_config(model, task_type, targets, s, base_dir, init_text)` builds the PEFT config from the model, peft's
    TaskType, the linear layers kollm targets on this architecture, the FinetuneConfig `s`, the base folder and the
    task's instruction; None means full fine-tuning (every weight trains, nothing to merge).
    """

    name: str
    peft_config: Callable[..., Any] | None
    fields: tuple[str, ...] = ()  # the finetune.* settings it reads, besides its learning rate
    lr: str = "lr"  # which finetune.* learning rate it trains with
    mergeable: bool = True  # folds into the base weights (merge_and_unload) with the same logits
    quantized_base: bool = False  # trains on an NF4 base (bitsandbytes), merged into the full-precision one
    init_from_instruction: bool = False  # starts from the task's instruction text (prompt tuning)
    # NeMo AutoModel runs it (finetune.backend=automodel): the extra settings of AutoModel's PeftConfig and model
    # (e.g. {"peft": {"use_dora": True}}); None: the HF backend only
    automodel: dict[str, dict[str, Any]] | None = None

    @property
    def adapter(self) -> bool:
        """Whether it trains an adapter (saved in HF-PEFT format) rather than the weights themselves."""
        return self.peft_config is not None
