"""The export stage's settings: the model card's title and licence."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ExportConfig:
    name: str = ""  # the model card's title; empty = kollm-<preset>
    # the strictest of the training data's licences (NSMC CC0; KLUE, korean-hate-speech CC BY-SA 4.0)
    license: str = "cc-by-sa-4.0"
