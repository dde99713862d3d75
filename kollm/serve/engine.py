"""Batched generation with a KV cache: what the CPU Triton model (and `kollm chat` on a local folder) runs.

Requests that arrive together are generated together: prompts are left-padded into one batch,
every step is one forward pass over all unfinished rows, and a row that finishes (end of sequence,
max tokens, a stop string, a cancelled client) leaves the batch and the KV cache at once, so
the others stop paying for it. Each row has its own sampling settings, random generator and
incremental detokenizer (`tokenizers`' DecodeStream: a Hangul syllable split over byte-fallback
tokens is emitted only when complete, so a stream never carries U+FFFD).

`EngineLoop` runs a `BatchGenerator` on a thread, like TensorRT-LLM's LLM API behind the llmapi
Triton model: `submit(job)` returns at once and the job's callbacks receive the text.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from tokenizers.decoders import DecodeStream

from kollm.serve.sampling import SamplingParams, next_tokens

CANCEL_CHECK_S = 0.05  # how often a running batch asks whether its clients are still there


@dataclass
class Job:
    """One request. `on_text(text, finish_reason, stop_reason)` receives the cumulative answer each time it
    grows and once more at the end (finish_reason "stop", "length" or "cancelled"); `on_error(msg)` replaces
    that last call when generation itself fails."""
    prompt_ids: list[int]
    params: SamplingParams
    on_text: Callable[[str, str | None, str | None], None]
    on_error: Callable[[str], None] = lambda msg: None
    is_cancelled: Callable[[], bool] = lambda: False


class TextStream:
    """Incremental detokenization of one answer: only complete characters, no leading whitespace, trailing
    whitespace held until text follows, and text that may be the start of a stop string held back."""

    def __init__(self, tokenizer, stop: list[str]):
        self.backend = tokenizer.backend_tokenizer
        self.stream = DecodeStream(skip_special_tokens=True)
        self.raw, self.stop = "", stop

    def push(self, token_id: int) -> None:
        piece = self.stream.step(self.backend, token_id)
        if piece:
            self.raw += piece

    def text(self) -> str:
        return self.raw.lstrip().rstrip()

    def find_stop(self) -> tuple[str, str] | None:
        """(the text before the first stop string, that string) once one has been generated."""
        text, hits = self.raw.lstrip(), []
        for s in self.stop:
            at = text.find(s)
            if at >= 0:
                hits.append((at, s))
        if not hits:
            return None
        at, s = min(hits)
        return text[:at].rstrip(), s

    def streamable(self) -> str:
        text = self.text()
        hold = max((n for s in self.stop for n in range(len(s) - 1, 0, -1) if text.endswith(s[:n])), default=0)
        return text[:len(text) - hold].rstrip()


@dataclass
class _Row:
    job: Job
    stream: TextStream
    generator: torch.Generator
    budget: int
    generated: list[int] = field(default_factory=list)
    sent: str = ""
    done: bool = False


class BatchGenerator:
    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        vocab = model.get_output_embeddings().weight.shape[0]
        self.context = getattr(model.config, "max_position_embeddings", 0) or 10**9
        # special tokens other than </s> (<unk>, <pad>, <s>, role tags) are never answer text
        self.banned = torch.zeros(vocab, dtype=torch.bool)
        self.banned[[i for i in tokenizer.all_special_ids if i != self.eos and i < vocab]] = True
        # whitespace-only tokens: never two in a row, never first (curated text has no whitespace runs,
        # but a small model still loops on "▁")
        self.space = torch.zeros(vocab, dtype=torch.bool)
        pieces = tokenizer.batch_decode([[i] for i in range(min(vocab, len(tokenizer)))])
        for i, piece in enumerate(pieces):
            self.space[i] = i != self.eos and not piece.strip() and not self.banned[i]

    def room(self, prompt_len: int) -> int:
        """How many tokens an answer to a prompt of this length may have."""
        return self.context - prompt_len

    @torch.no_grad()
    def generate(self, jobs: list[Job]) -> None:
        rows = [self._row(job) for job in jobs]
        try:
            self._generate(rows)
        except Exception as e:  # fail these requests, keep the loop (and the server) alive
            for row in rows:
                if not row.done:
                    row.job.on_error(f"generation failed: {type(e).__name__}: {e}")

    def _row(self, job: Job) -> _Row:
        seed = job.params.seed if job.params.seed is not None else random.getrandbits(63)
        generator = torch.Generator().manual_seed(seed % 2**63)
        budget = min(job.params.max_tokens, self.room(len(job.prompt_ids)))
        return _Row(job, TextStream(self.tokenizer, job.params.stop), generator, budget)

    def _generate(self, rows: list[_Row]) -> None:
        rows = [r for r in rows if r.budget > 0 or not self._finish(r, "", "length", None)]
        if not rows:
            return
        width = max(len(r.job.prompt_ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r.job.prompt_ids)
            ids[i, width - n:] = torch.tensor(r.job.prompt_ids)
            mask[i, width - n:] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        counts = torch.zeros((len(rows), self.banned.numel()))
        past, checked = None, time.monotonic()
        while rows:
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=past,
                             use_cache=True)
            past = out.past_key_values
            logits = out.logits[:, -1].float()
            logits[:, self.banned] = float("-inf")
            for i, r in enumerate(rows):
                if len(r.generated) < r.job.params.min_tokens or not r.stream.text():
                    logits[i, self.eos] = float("-inf")  # never answer with nothing
                if not r.generated or self.space[r.generated[-1]]:
                    logits[i, self.space] = float("-inf")
            tokens = next_tokens(logits, counts, [r.job.params for r in rows], [r.generator for r in rows])
            cancel = time.monotonic() - checked >= CANCEL_CHECK_S
            if cancel:
                checked = time.monotonic()
            keep = []
            for i, (r, token) in enumerate(zip(rows, tokens)):
                if not self._advance(r, token, cancel):
                    keep.append(i)
            if len(keep) < len(rows):
                index = torch.tensor(keep, dtype=torch.long)
                rows = [rows[i] for i in keep]
                if not rows:
                    break
                past.batch_select_indices(index)
                mask, positions, counts = mask[index], positions[index], counts[index]
                tokens = [tokens[i] for i in keep]
            step = torch.tensor(tokens, dtype=torch.long)
            counts[torch.arange(len(rows)), step] += 1
            ids = step.unsqueeze(1)
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
            positions = positions[:, -1:] + 1

    def _advance(self, r: _Row, token: int, check_cancel: bool) -> bool:
        """Adds the token to the row's answer; True when the row is finished (its last callback made)."""
        if check_cancel and r.job.is_cancelled():
            return self._finish(r, r.stream.text(), "cancelled", None)
        if token == self.eos:
            return self._finish(r, r.stream.text(), "stop", None)
        r.generated.append(token)
        r.stream.push(token)
        hit = r.stream.find_stop()
        if hit is not None:
            return self._finish(r, hit[0], "stop", hit[1])
        if len(r.generated) >= r.budget:
            return self._finish(r, r.stream.text(), "length", None)
        text = r.stream.streamable()
        if len(text) > len(r.sent):
            r.sent = text
            r.job.on_text(text, None, None)
        return False

    @staticmethod
    def _finish(r: _Row, text: str, reason: str, stop_reason: str | None) -> bool:
        r.done = True  # no error callback after this
        r.job.on_text(text, reason, stop_reason)
        return True


class EngineLoop:
    """A BatchGenerator on a thread: jobs submitted while a batch runs form the next batch (up to `max_batch`)."""

    def __init__(self, generator: BatchGenerator, max_batch: int = 16):
        self.generator, self.max_batch = generator, max(1, max_batch)
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="kollm-engine", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
        self.jobs.put(job)

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < self.max_batch:
                try:
                    nxt = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.jobs.put(None)  # finish this batch, then stop
                    break
                batch.append(nxt)
            self.generator.generate(batch)
