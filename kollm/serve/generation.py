"""Greedy generation with a KV cache, streamed as complete UTF-8 text pieces.

Decoding token by token can cut a multi-byte Hangul character (or a byte-fallback
sequence) in half and emit U+FFFD. We decode the whole continuation each step and only
emit the new suffix once it no longer ends in a replacement character.
"""

from __future__ import annotations

import functools
from typing import Iterator

import torch


def chat_prompt_ids(tokenizer, prompt: str) -> torch.Tensor:
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                         tokenize=False)
    return tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]


class IncrementalDecoder:
    def __init__(self, tokenizer):
        self.tokenizer, self.ids, self.emitted = tokenizer, [], ""

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        # Whitespace is held back until text follows it: answers neither start nor end with spaces.
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True).strip()
        if text.endswith("\ufffd"):
            return ""  # an incomplete character: wait for the next token
        new, self.emitted = text[len(self.emitted):], text
        return new


def _is_space(tokenizer, token: int) -> bool:
    return token != tokenizer.eos_token_id and not tokenizer.decode([token]).strip()


def _pick(logits: torch.Tensor, is_space, avoid_space: bool) -> int:
    """Greedy, except that a whitespace-only token never follows another (or starts the answer):
    curated training text has no whitespace runs, but a small model still loops on "▁"."""
    for token in torch.topk(logits, k=min(16, logits.numel())).indices.tolist():
        if not (avoid_space and is_space(token)):
            return token
    return int(torch.argmax(logits))


@torch.no_grad()
def stream_generate(model, tokenizer, prompt: str, max_new_tokens: int, min_new_tokens: int = 1,
                    repetition_penalty: float = 1.2) -> Iterator[str]:
    """Yields text pieces; </s> is suppressed until `min_new_tokens` tokens and some visible text exist."""
    model.eval()
    ids = chat_prompt_ids(tokenizer, prompt)
    max_pos = getattr(model.config, "max_position_embeddings", 0) or 10**9
    budget = max(0, min(max_new_tokens, max_pos - ids.shape[1]))
    decoder = IncrementalDecoder(tokenizer)
    # Special tokens other than </s> (<unk>, <pad>, <s>, role tags) are never answer text.
    banned = torch.tensor([i for i in tokenizer.all_special_ids if i != tokenizer.eos_token_id], dtype=torch.long)
    is_space = functools.lru_cache(maxsize=None)(lambda token: _is_space(tokenizer, token))  # one decode per id
    past, step_input, generated = None, ids, []
    for _ in range(budget):
        out = model(input_ids=step_input, past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[0, -1].float()
        if generated and repetition_penalty != 1.0:
            seen = torch.tensor(sorted(set(generated)))
            scores = logits[seen]
            logits[seen] = torch.where(scores > 0, scores / repetition_penalty, scores * repetition_penalty)
        logits[banned] = float("-inf")
        if len(generated) < min_new_tokens or not decoder.emitted.strip():
            logits[tokenizer.eos_token_id] = float("-inf")  # never answer with nothing
        token = _pick(logits, is_space, avoid_space=not generated or is_space(generated[-1]))
        if token == tokenizer.eos_token_id:
            break
        generated.append(token)
        piece = decoder.push(token)
        if piece:
            yield piece
        step_input = torch.tensor([[token]])
