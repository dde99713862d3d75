"""The quantize stage's settings: ModelOpt formats, calibration, what each format is measured on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# ModelOpt's PTQ formats (kollm.quantize.modelopt.MODELOPT_CONFIGS maps each to its ModelOpt config)
QuantFormat = Literal["int8_sq", "fp8", "int4_awq", "w4a8_awq"]


@dataclass
class QuantizeConfig:
    # ModelOpt PTQ formats exported for TensorRT-LLM; int4 ones need
    # layer widths that are multiples of 128 and are skipped, with the reason, for models whose widths are not
    formats: list[QuantFormat] = field(default_factory=lambda: ["int8_sq", "fp8", "int4_awq"])
    calibration_docs: int = 64  # curated corpus documents (the first, in corpus order) the scales come from
    calibration_len: int = 128
    perplexity_docs: int = 300  # held-out documents each format's perplexity is measured on
    nsmc_examples: int = 400  # balanced NSMC test reviews each format's (chat-format) accuracy is measured on
