"""Batched generation with a KV cache: what the CPU Triton model (and `kollm chat` on a local folder) runs.

Requests that arrive together are generated together: prompts are left-padded into one batch,
every step is one forward pass over all unfinished rows, and a row that finishes (end of sequence,
max tokens, a stop string, a cancelled client) leaves the batch and the KV cache at once, so
the others stop paying for it. The cache is transformers' own: attention keys and values (Llama, the MoEs),
fixed-size recurrent and convolution states (Mamba, Mamba-2), or both (Nemotron-H); a state has no time
axis, so rows join and leave it along the batch axis only. Each row has its own sampling settings, random generator and
incremental detokenizer (`tokenizers`' DecodeStream: a Hangul syllable split over byte-fallback
tokens is emitted only when complete) and a UTF-8 guard (utf8.py: byte tokens only where they spell
valid UTF-8), so an answer never carries U+FFFD.

`EngineLoop` runs a `BatchGenerator` on a thread, like TensorRT-LLM's LLM API behind the llmapi
Triton model: `submit(job)` returns at once and the job's callbacks receive the text.
"""

from __future__ import annotations

import inspect
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from tokenizers.decoders import DecodeStream

from kollm.generation.sampling import SamplingParams, next_tokens
from kollm.generation.utf8 import ANY, Utf8Guard

CANCEL_CHECK_S = 0.05  # how often a running batch asks whether its clients are still there
ErrorKind = Literal["internal", "unavailable", "deadline"]


def _ignore_error(msg: str, kind: ErrorKind = "internal") -> None:
    """A job's default `on_error`: nobody is waiting for the answer."""


@dataclass
class Job:
    """One request. `on_text(text, finish_reason, stop_reason)` receives the cumulative answer each time it
    grows and once more at the end (finish_reason "stop", "length" or "cancelled"); `on_error(msg, kind)` replaces
    that last call when the answer cannot be given: kind "internal" (generation failed), "unavailable" (the engine
    is shutting down; retry elsewhere) or "deadline" (it ran past `deadline`, a time.monotonic() value)."""

    prompt_ids: list[int]
    params: SamplingParams
    on_text: Callable[[str, str | None, str | None], None]
    on_error: Callable[[str, ErrorKind], None] = _ignore_error
    is_cancelled: Callable[[], bool] = lambda: False
    deadline: float | None = None


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
        return text[: len(text) - hold].rstrip()


@dataclass
class _Row:
    job: Job
    stream: TextStream
    generator: torch.Generator
    budget: int
    generated: list[int] = field(default_factory=list)
    sent: str = ""
    done: bool = False
    utf8: tuple = (0, ANY)  # continuation bytes the current character still needs, and the next one's range


@dataclass
class _Batch:
    """The running batch: rows, their KV cache (left-padded to one length), mask, last positions, token counts,
    and the tokens to feed next."""

    rows: list[_Row]
    cache: object
    mask: torch.Tensor
    positions: torch.Tensor
    counts: torch.Tensor
    next_ids: torch.Tensor | None = None

    def feed(self, tokens: list[int]) -> None:
        step = torch.tensor(tokens, dtype=torch.long)
        self.counts[torch.arange(len(self.rows)), step] += 1
        self.next_ids = step.unsqueeze(1)
        self.mask = torch.cat([self.mask, torch.ones((len(self.rows), 1), dtype=torch.long)], dim=1)
        self.positions = self.positions + 1

    def select(self, keep: list[int]) -> None:
        index = torch.tensor(keep, dtype=torch.long)
        self.rows = [self.rows[i] for i in keep]
        if isinstance(self.cache, list):  # RWKV: five (batch, hidden, layers) states
            self.cache[:] = [s[index] for s in self.cache]
        for layer in _layers(self.cache):
            if _is_attention(layer):
                layer.keys, layer.values = layer.keys[index], layer.values[index]
            elif _is_state(layer):
                for states in (layer.conv_states, layer.recurrent_states):
                    for k in states:
                        states[k] = states[k][index]
        self.mask, self.positions, self.counts = self.mask[index], self.positions[index], self.counts[index]
        # columns no remaining row attends to (the padding of rows that left) are dropped from the cache
        first = int(self.mask.any(0).nonzero()[0])
        if first:
            self.mask = self.mask[:, first:]
            for layer in filter(_is_attention, _layers(self.cache)):
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]

    @staticmethod
    def merge(a: _Batch | None, b: _Batch | None) -> _Batch | None:
        """One batch of both: the shorter cache is left-padded (masked) to the longer one's length."""
        if a is None or b is None:
            return a or b
        length = max(a.mask.shape[1], b.mask.shape[1])
        for x in (a, b):
            pad = length - x.mask.shape[1]
            if pad:
                x.mask = torch.cat([torch.zeros((len(x.rows), pad), dtype=torch.long), x.mask], dim=1)
                for layer in filter(_is_attention, _layers(x.cache)):
                    shape = (layer.keys.shape[0], layer.keys.shape[1], pad, layer.keys.shape[3])
                    layer.keys = torch.cat([layer.keys.new_zeros(shape), layer.keys], dim=2)
                    layer.values = torch.cat([layer.values.new_zeros(shape), layer.values], dim=2)
        if isinstance(a.cache, list) and isinstance(b.cache, list):  # one kind of cache per model: both or neither
            a.cache[:] = [torch.cat([sa, sb]) for sa, sb in zip(a.cache, b.cache)]
        for la, lb in zip(_layers(a.cache), _layers(b.cache)):
            if _is_attention(la):
                la.keys, la.values = torch.cat([la.keys, lb.keys]), torch.cat([la.values, lb.values])
            elif _is_state(la):
                for sa, sb in ((la.conv_states, lb.conv_states), (la.recurrent_states, lb.recurrent_states)):
                    for k in sa:
                        sa[k] = torch.cat([sa[k], sb[k]])
        return _Batch(
            a.rows + b.rows,
            a.cache,
            torch.cat([a.mask, b.mask]),
            torch.cat([a.positions, b.positions]),
            torch.cat([a.counts, b.counts]),
            torch.cat([a.next_ids, b.next_ids]),
        )


def _layers(cache) -> list:
    return cache.layers if hasattr(cache, "layers") else []


def _is_attention(layer) -> bool:
    return getattr(layer, "keys", None) is not None


def _is_state(layer) -> bool:
    return hasattr(layer, "recurrent_states")


class BatchGenerator:
    def __init__(self, model, tokenizer):
        if model.config.model_type == "rwkv":  # transformers' own mixes the rows of a batch
            from kollm.models.rwkv import make_batch_correct

            make_batch_correct(model)
        self.model, self.tokenizer = model.eval(), tokenizer
        # Mamba and Mamba-2 take their cache as `cache_params`, RWKV as `state` (kollm.models.rwkv's batch-correct
        # model: it reads the mask), and have no positions; the others as Llama
        forward = inspect.signature(model.forward).parameters
        self.cache_arg = next((a for a in ("cache_params", "state") if a in forward), "past_key_values")
        self.positions = "position_ids" in forward
        self.stopping = False  # set by EngineLoop.close: running rows end with an "unavailable" error
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        vocab = getattr(model.get_output_embeddings(), "out_features", None) or model.config.vocab_size
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
        self.utf8 = Utf8Guard(tokenizer, vocab)

    def room(self, prompt_len: int) -> int:
        """How many tokens an answer to a prompt of this length may have."""
        return self.context - prompt_len

    @torch.no_grad()
    def generate(self, jobs: list[Job], more: Callable[[int], list[Job]] | None = None, max_batch: int = 0) -> None:
        """Generates `jobs` to the end; between steps `more(n)` may hand over up to n new jobs, which join
        the running batch (continuous batching, at most `max_batch` rows; 0 = no limit)."""
        rows = [self._row(job) for job in jobs]
        try:
            self._generate(rows, more, max_batch or 10**9)
        except Exception as e:  # fail these requests, keep the loop (and the server) alive
            for row in rows:
                if not row.done:
                    row.job.on_error(f"generation failed: {type(e).__name__}: {e}", "internal")

    def _row(self, job: Job) -> _Row:
        seed = job.params.seed if job.params.seed is not None else random.getrandbits(63)
        generator = torch.Generator().manual_seed(seed % 2**63)
        budget = min(job.params.max_tokens, self.room(len(job.prompt_ids)))
        return _Row(job, TextStream(self.tokenizer, job.params.stop), generator, budget)

    def _prefill(self, rows: list[_Row]) -> _Batch | None:
        """One forward pass over the left-padded prompts; their first tokens are chosen and added."""
        rows = [r for r in rows if r.budget > 0 or not self._finish(r, "", "length", None)]
        if not rows:
            return None
        width = max(len(r.job.prompt_ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r.job.prompt_ids)
            ids[i, width - n :] = torch.tensor(r.job.prompt_ids)
            mask[i, width - n :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self._forward(ids, mask, positions, None)
        batch = _Batch(
            rows, getattr(out, self.cache_arg), mask, positions[:, -1:], torch.zeros((len(rows), self.banned.numel()))
        )
        return self._choose(batch, out.logits[:, -1].float(), check_cancel=False)

    def _generate(self, rows: list[_Row], more, max_batch: int) -> None:
        batch, checked = self._prefill(rows), time.monotonic()
        while batch is not None or more is not None:
            if more is not None and (batch is None or len(batch.rows) < max_batch):
                joining = [self._row(job) for job in more(max_batch - (len(batch.rows) if batch else 0))]
                rows += joining
                if joining:
                    batch = _Batch.merge(batch, self._prefill(joining))
            if batch is None:
                return
            if self.stopping:
                for r in batch.rows:
                    r.done = True
                    r.job.on_error("the server is shutting down", "unavailable")
                return
            out = self._forward(batch.next_ids, batch.mask, batch.positions, batch.cache)
            cancel = time.monotonic() - checked >= CANCEL_CHECK_S
            if cancel:
                checked = time.monotonic()
            batch = self._choose(batch, out.logits[:, -1].float(), check_cancel=cancel)

    def _forward(self, ids, mask, positions, cache):
        kwargs = {"position_ids": positions} if self.positions else {}
        if cache is not None:
            kwargs[self.cache_arg] = cache
            if self.cache_arg == "cache_params":
                # a state holds no padding: the mask matters at prefill only (Mamba-1 multiplies one step's
                # activations by the whole mask, broadcasting them over its length)
                mask = None
        return self.model(input_ids=ids, attention_mask=mask, use_cache=True, **kwargs)

    def _choose(self, batch: _Batch, logits: torch.Tensor, check_cancel: bool) -> _Batch | None:
        """Picks each row's next token, hands it to the row, drops finished rows; None once all are."""
        logits[:, self.banned] = float("-inf")
        for i, r in enumerate(batch.rows):
            if len(r.generated) < r.job.params.min_tokens or not r.stream.text():
                logits[i, self.eos] = float("-inf")  # never answer with nothing
            if not r.generated or self.space[r.generated[-1]]:
                logits[i, self.space] = float("-inf")
            if self.utf8.active:
                logits[i, self.utf8.banned(r.utf8)] = float("-inf")
        tokens = next_tokens(
            logits, batch.counts, [r.job.params for r in batch.rows], [r.generator for r in batch.rows]
        )
        keep = [i for i, (r, token) in enumerate(zip(batch.rows, tokens)) if not self._advance(r, token, check_cancel)]
        if not keep:
            return None
        if len(keep) < len(batch.rows):
            batch.select(keep)
            tokens = [tokens[i] for i in keep]
        batch.feed(tokens)
        return batch

    def _advance(self, r: _Row, token: int, check_cancel: bool) -> bool:
        """Adds the token to the row's answer; True when the row is finished (its last callback made)."""
        if check_cancel and r.job.is_cancelled():
            return self._finish(r, r.stream.text(), "cancelled", None)
        if r.job.deadline is not None and time.monotonic() > r.job.deadline:
            r.done = True
            r.job.on_error(
                f"no answer within the server's time limit for one request ({len(r.generated)} tokens "
                f"generated); ask for fewer tokens (sampling_param_max_tokens)",
                "deadline",
            )
            return True
        if token == self.eos:
            return self._finish(r, r.stream.text(), "stop", None)
        r.generated.append(token)
        r.utf8 = self.utf8.advance(r.utf8, token)
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
    """A BatchGenerator on a thread: jobs submitted while a batch runs join it at the next step (up to `max_batch`
    rows; 1 = one request at a time)."""

    def __init__(self, generator: BatchGenerator, max_batch: int = 16):
        self.generator, self.max_batch = generator, max(1, max_batch)
        self.jobs: queue.Queue = queue.Queue()
        self.closing = False
        self.thread = threading.Thread(target=self._run, name="kollm-engine", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
        self.jobs.put(job)

    def close(self) -> None:
        """Ends running requests with an "unavailable" error, refuses queued ones the same way, stops the thread."""
        self.closing = self.generator.stopping = True
        self.jobs.put(None)
        self.thread.join(timeout=30)
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.on_error("the server is shutting down", "unavailable")

    def _take(self, n: int) -> list[Job]:
        taken: list[Job] = []
        while len(taken) < n and not self.closing:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self.closing = True
                break
            taken.append(job)
        return taken

    def _run(self) -> None:
        while not self.closing:
            job = self.jobs.get()
            if job is None:
                return
            more = self._take if self.max_batch > 1 else None
            self.generator.generate([job], more=more, max_batch=self.max_batch)
