"""A streaming terminal chat (`kollm chat`): against Triton (HTTP or gRPC) or a local model folder.

The conversation is kept here and rendered with the model's chat template on every turn (the llmapi
contract takes text), so the model sees the whole history; the oldest turns are dropped when the
history no longer fits the context. `/reset` forgets the history, `/exit` (or Ctrl-D) leaves.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TextIO

from kollm.generation.local import chat_text
from kollm.serve.client import LLMClient, ServingError, detect_protocol

Backend = Callable[[str, dict], Iterator[str]]  # (prompt text, sampling) -> answer pieces


def triton_backend(url: str, protocol: str, model: str, timeout_s: float) -> tuple[Backend, str]:
    """The chat's backend and the protocol it speaks; protocol "auto" asks the port which of Triton's two it is."""
    if protocol == "auto":
        protocol = detect_protocol(url, timeout_s=min(timeout_s, 10.0))
    client = LLMClient(url, protocol=protocol, model=model, timeout_s=timeout_s)
    return (lambda prompt, sampling: client.stream(prompt, **sampling)), protocol


def terminal_reader(prompt: str = "나> ") -> Callable[[], str]:
    """input() with line editing and history (arrow keys, Ctrl-A/E, Up for the last message) through readline,
    as in Python's own REPL; without it a terminal hands the model arrow keys as `^[[D`."""
    try:
        import readline  # noqa: F401  importing it is what makes input() edit lines
    except ImportError:  # Windows' Python has no readline
        pass
    return lambda: input(prompt)


def local_backend(model_dir: str, threads: int = 0) -> tuple[Backend, object]:
    """Generation in this process with the serving engine; pieces arrive as the engine makes them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kollm.generation.engine import BatchGenerator, Job
    from kollm.generation.sampling import SamplingParams

    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    generator = BatchGenerator(AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True), tokenizer)

    def stream(prompt: str, sampling: dict) -> Iterator[str]:
        events: queue.Queue = queue.Queue()
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        params = SamplingParams(**sampling).check(max_tokens_limit=sampling.get("max_tokens", 64))

        def on_error(msg: str, kind: str = "internal") -> None:
            events.put((ServingError(msg), "error"))

        job = Job(ids, params, on_text=lambda text, reason, _s: events.put((text, reason)), on_error=on_error)
        threading.Thread(target=generator.generate, args=([job],), daemon=True).start()
        sent = ""
        while True:
            text, reason = events.get()
            if reason == "error":
                raise text
            if len(text) > len(sent):
                yield text[len(sent) :]
                sent = text
            if reason is not None:
                return

    return stream, tokenizer


class Conversation:
    def __init__(self, tokenizer, context_tokens: int, max_tokens: int, system: str = ""):
        self.tokenizer, self.budget = tokenizer, context_tokens - max_tokens
        self.system = system
        self.turns: list = []

    def prompt(self, message: str) -> str:
        """The history plus `message` in the chat template, oldest turns dropped until it fits."""
        turns = self.turns + [{"role": "user", "content": message}]
        while True:
            messages = ([{"role": "system", "content": self.system}] if self.system else []) + turns
            text = chat_text(self.tokenizer, messages)
            if len(turns) <= 1 or len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) <= self.budget:
                return text
            turns = turns[2:]  # drop the oldest user/assistant pair

    def add(self, message: str, answer: str) -> None:
        self.turns += [{"role": "user", "content": message}, {"role": "assistant", "content": answer}]


def run_chat(
    backend: Backend,
    conversation: Conversation,
    sampling: dict,
    read: Callable[[], str] = input,
    out: TextIO = sys.stdout,
) -> int:
    """The loop; returns the number of answered turns. A server error is one line, and the chat goes on."""
    answered = 0
    while True:
        try:
            message = read().strip()
        except EOFError:
            print(file=out)
            return answered
        if not message:
            continue
        if message in ("/exit", "/quit"):
            return answered
        if message == "/reset":
            conversation.turns = []
            print("(대화 기록을 지웠습니다 — history cleared)", file=out, flush=True)
            continue
        pieces = []
        try:
            for piece in backend(conversation.prompt(message), sampling):
                pieces.append(piece)
                print(piece, end="", file=out, flush=True)
        except ServingError as e:
            print(f"\nerror: {e}", file=out, flush=True)
            continue
        print(file=out, flush=True)
        conversation.add(message, "".join(pieces))
        answered += 1
