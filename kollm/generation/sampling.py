"""A request's generation settings, checked once, and the batched sampler that applies them.

The names and meanings follow TensorRT-LLM's `SamplingParams` (the llmapi Triton model's
`sampling_param_*` inputs), so a request means the same on the CPU model and on TensorRT-LLM:
temperature 0 is greedy, top_k 0 and top_p 1 switch those filters off, a seed makes sampling
repeatable, stop strings end the answer (and are not part of it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from kollm.core.errors import KollmError

MAX_STOP_STRINGS, MAX_STOP_CHARS = 8, 64


class InvalidRequest(KollmError):
    """A user mistake in a request: the server answers 400 (Triton INVALID_ARG) and keeps serving."""


@dataclass
class SamplingParams:
    max_tokens: int = 64
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    # kollm's own: a small model loops without a repetition penalty, and answers with nothing
    # unless the end of sequence waits for a few tokens
    repetition_penalty: float = 1.2
    min_tokens: int = 0

    def check(self, max_tokens_limit: int) -> SamplingParams:
        """Raises InvalidRequest naming the field, its value and the allowed range."""

        def bad(name, value, allowed):
            raise InvalidRequest(f"sampling_param_{name}={value!r} is out of range: {allowed}")

        for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty", "repetition_penalty"):
            if not math.isfinite(getattr(self, name)):
                bad(name, getattr(self, name), "a finite number")
        if not 1 <= self.max_tokens <= max_tokens_limit:
            bad("max_tokens", self.max_tokens, f"1 to {max_tokens_limit}")
        if not 0.0 <= self.temperature <= 10.0:
            bad("temperature", self.temperature, "0 (greedy) to 10")
        if self.top_k < 0:
            bad("top_k", self.top_k, "0 (off) or more")
        if not 0.0 < self.top_p <= 1.0:
            bad("top_p", self.top_p, "more than 0, at most 1")
        for name in ("frequency_penalty", "presence_penalty"):
            if not -2.0 <= getattr(self, name) <= 2.0:
                bad(name, getattr(self, name), "-2 to 2")
        if not 0.5 <= self.repetition_penalty <= 5.0:
            bad("repetition_penalty", self.repetition_penalty, "0.5 to 5")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            bad("seed", self.seed, "0 to 2**64 - 1")
        if len(self.stop) > MAX_STOP_STRINGS:
            raise InvalidRequest(f"sampling_param_stop has {len(self.stop)} strings; at most {MAX_STOP_STRINGS}")
        for s in self.stop:
            if not s or len(s) > MAX_STOP_CHARS:
                raise InvalidRequest(f"sampling_param_stop strings must be 1 to {MAX_STOP_CHARS} characters, got {s!r}")
        if not 0 <= self.min_tokens <= self.max_tokens:
            bad("min_tokens", self.min_tokens, f"0 to max_tokens ({self.max_tokens})")
        return self


def _penalize(logits: torch.Tensor, counts: torch.Tensor, params: list[SamplingParams]) -> torch.Tensor:
    """Repetition penalty (HF's: divide positive, multiply negative scores of seen tokens) and the
    OpenAI frequency/presence penalties, per row; `counts` is [B, V] generated-token counts."""
    seen = counts > 0
    rep = torch.tensor([p.repetition_penalty for p in params], dtype=logits.dtype).unsqueeze(1)
    penalized = torch.where(logits > 0, logits / rep, logits * rep)
    logits = torch.where(seen, penalized, logits)
    freq = torch.tensor([p.frequency_penalty for p in params], dtype=logits.dtype).unsqueeze(1)
    pres = torch.tensor([p.presence_penalty for p in params], dtype=logits.dtype).unsqueeze(1)
    return logits - freq * counts - pres * seen.to(logits.dtype)


def _sample_row(logits: torch.Tensor, p: SamplingParams, generator: torch.Generator) -> int:
    if p.temperature == 0.0:
        return int(torch.argmax(logits))
    logits = logits / p.temperature
    if p.top_k:
        k = min(p.top_k, logits.numel())
        kth = torch.topk(logits, k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if p.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= p.top_p  # keep the first token always
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    return int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator))


def next_tokens(
    logits: torch.Tensor, counts: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator]
) -> list[int]:
    """One token per row of `logits` [B, V] (already masked for banned tokens)."""
    logits = _penalize(logits.float(), counts, params)
    return [_sample_row(logits[i], p, generators[i]) for i, p in enumerate(params)]
