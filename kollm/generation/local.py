"""Chat prompts and one-off generation on a local model (the evaluation's samples, the judges).

Both go through the serving engine (engine.py), so a sample in a report is what the server would say.
"""

from __future__ import annotations

import torch

from kollm.generation.engine import BatchGenerator, Job
from kollm.generation.sampling import SamplingParams


def chat_text(tokenizer, messages: list[dict]) -> str:
    """The conversation in the tokenizer's chat template, ending where the assistant's answer starts."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def chat_prompt_ids(tokenizer, prompt: str) -> torch.Tensor:
    text = chat_text(tokenizer, [{"role": "user", "content": prompt}])
    return tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]


def generate_texts(model, tokenizer, prompts: list[str], params: SamplingParams) -> list[tuple[str, str]]:
    """(answer, finish_reason) for each user message, generated as one batch."""
    results: list = [None] * len(prompts)

    def job(i: int, prompt: str) -> Job:
        def on_text(text, reason, _stop):
            if reason is not None:
                results[i] = (text, reason)

        def on_error(msg, kind="internal"):
            raise RuntimeError(msg)

        return Job(chat_prompt_ids(tokenizer, prompt)[0].tolist(), params, on_text, on_error)

    BatchGenerator(model, tokenizer).generate([job(i, p) for i, p in enumerate(prompts)])
    return results


def generate(model, tokenizer, prompt: str, max_new_tokens: int, min_new_tokens: int = 1) -> str:
    """Greedy answer to one user message (repetition penalty 1.2, as the server's default)."""
    params = SamplingParams(max_tokens=max_new_tokens, min_tokens=min_new_tokens)
    return generate_texts(model, tokenizer, [prompt], params)[0][0]
