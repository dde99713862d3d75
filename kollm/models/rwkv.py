"""transformers' RWKV-4, made batch-correct, and registered for `AutoModelForCausalLM`.

Two things in transformers' `modeling_rwkv` (5.23) break batches, and so every stage after pretraining
(padded fine-tuning batches, GRPO's sampling, the serving engine):

- its one-token step reads the token-shift state as (batch, hidden) and mixes it into (batch, 1, hidden)
  activations: broadcasting makes that (batch, batch, hidden), and the rows of a batch mix;
- it ignores the attention mask: left padding runs through the time-mix recurrence and the token shift,
  so a padded prompt is answered from a different state than the same prompt alone.

Here the token shift takes, at each position, the last *real* token before it (the state's, or zeros, before
the first), the recurrence leaves a row's state as it was at its padded positions, and one-token steps keep
rows apart. The classes keep transformers' names, weights and saved configs: folders stay plain HF folders
(`architectures: ["RwkvForCausalLM"]`) that load anywhere; in a kollm process, `register()` (the stage runner,
the serving model and `kollm.models.seq_classification` call it) makes the auto classes build these. Without padding
on a GPU the time mix still runs transformers' CUDA kernel.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

import torch
import transformers as tf
from transformers.models.rwkv import modeling_rwkv as hf

# the mask of the forward pass in progress (transformers' blocks take none); rows x positions
_MASK: contextvars.ContextVar = contextvars.ContextVar("kollm_rwkv_mask", default=None)


@contextlib.contextmanager
def _masked(attention_mask):
    token = _MASK.set(attention_mask)
    try:
        yield
    finally:
        _MASK.reset(token)


def _padding(hidden: torch.Tensor) -> torch.Tensor | None:
    """Which of these positions are real (rows x positions, bool), or None when all are: a decode step's
    mask covers the whole context, of which `hidden` holds the last positions."""
    mask = _MASK.get()
    if mask is None:
        return None
    mask = mask[:, -hidden.shape[1] :].to(hidden.device).bool()
    return None if bool(mask.all()) else mask


def _previous(hidden: torch.Tensor, last: torch.Tensor | None, real: torch.Tensor | None):
    """The token shift: at each position the activations of the last real token before it (`last`, the state's
    token or zeros, before the first real one), and the last real token's, which the state keeps."""
    first = last if last is not None else hidden.new_zeros(hidden.shape[0], hidden.shape[2])
    tokens = torch.cat([first.unsqueeze(1).to(hidden.dtype), hidden], dim=1)  # index 0: the state's token
    if real is None:
        return tokens[:, :-1], hidden[:, -1]
    positions = torch.arange(1, hidden.shape[1] + 1, device=hidden.device)
    upto = torch.cummax(torch.where(real, positions, 0), dim=1).values  # in `tokens`: last real token <= t
    before = torch.cat([upto.new_zeros(upto.shape[0], 1), upto[:, :-1]], dim=1)

    def take(index):
        return tokens.gather(1, index.unsqueeze(-1).expand(-1, -1, hidden.shape[2]))

    return take(before), take(upto[:, -1:]).squeeze(1)


def _time_mix(time_decay, time_first, key, value, state, real):
    """RWKV-4's WKV recurrence (transformers' CPU loop, in log space for stability), a row's state unchanged
    where it is padding. Returns the outputs and (numerator, denominator, max) states."""
    rows, length, width = key.shape
    if state is None:
        num = torch.zeros(rows, width, dtype=torch.float32, device=key.device)
        den, top = torch.zeros_like(num), torch.full_like(num, -1e38)
    else:
        num, den, top = state
    decay, out = -torch.exp(time_decay), torch.zeros_like(key)
    for t in range(length):
        k, v = key[:, t].float(), value[:, t]
        peak = torch.maximum(top, k + time_first)
        a, b = torch.exp(top - peak), torch.exp(k + time_first - peak)
        out[:, t] = ((a * num + b * v) / (a * den + b)).to(out.dtype)
        peak = torch.maximum(top + decay, k)
        a, b = torch.exp(top + decay - peak), torch.exp(k - peak)
        keep = real[:, t, None]
        num, den, top = (
            torch.where(keep, a * num + b * v, num),
            torch.where(keep, a * den + b, den),
            torch.where(keep, peak, top),
        )
    return out, [num, den, top]


class RwkvSelfAttention(hf.RwkvSelfAttention):
    def extract_key_value(self, hidden, state=None):
        last = state[1][:, :, self.layer_id] if state is not None else None
        shifted, newest = _previous(hidden, last, _padding(hidden))
        key = self.key(hidden * self.time_mix_key + shifted * (1 - self.time_mix_key))
        value = self.value(hidden * self.time_mix_value + shifted * (1 - self.time_mix_value))
        receptance = torch.sigmoid(
            self.receptance(hidden * self.time_mix_receptance + shifted * (1 - self.time_mix_receptance))
        )
        if state is not None:
            state[1][:, :, self.layer_id] = newest
        return receptance, key, value, state

    def forward(self, hidden, state=None, use_cache=False):
        real = _padding(hidden)
        if real is None:
            return super().forward(hidden, state=state, use_cache=use_cache)
        receptance, key, value, state = self.extract_key_value(hidden, state=state)
        layer_state = tuple(s[:, :, self.layer_id] for s in state[2:]) if state is not None else None
        wkv, layer_state = _time_mix(self.time_decay, self.time_first, key, value, layer_state, real)
        if state is not None:
            for i, s in enumerate(layer_state):
                state[2 + i][:, :, self.layer_id] = s
        return self.output(receptance * wkv), state


class RwkvFeedForward(hf.RwkvFeedForward):
    def forward(self, hidden, state=None):
        last = state[0][:, :, self.layer_id] if state is not None else None
        shifted, newest = _previous(hidden, last, _padding(hidden))
        key = torch.square(torch.relu(self.key(hidden * self.time_mix_key + shifted * (1 - self.time_mix_key))))
        receptance = torch.sigmoid(
            self.receptance(hidden * self.time_mix_receptance + shifted * (1 - self.time_mix_receptance))
        )
        if state is not None:
            state[0][:, :, self.layer_id] = newest
        return receptance * self.value(key), state


class RwkvModel(hf.RwkvModel):
    @functools.wraps(hf.RwkvModel.forward)  # transformers reads the signature (generate, the serving engine)
    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        mask = attention_mask if attention_mask is not None else _MASK.get()  # RwkvForCausalLM sets it
        if self.gradient_checkpointing and self.training and mask is not None and not bool(mask.all()):
            # the blocks' recomputation in backward would run without the mask: other gradients, silently
            raise ValueError("kollm's RWKV does not take padded batches with activation checkpointing on")
        with _masked(mask):
            return super().forward(input_ids=input_ids, **kwargs)


class RwkvForCausalLM(hf.RwkvForCausalLM):
    def __init__(self, config):
        super().__init__(config)
        make_batch_correct(self)

    @functools.wraps(hf.RwkvForCausalLM.forward)
    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        with _masked(attention_mask):  # transformers' causal LM does not hand the mask to its RwkvModel
            return super().forward(input_ids=input_ids, **kwargs)


_FIXED = {
    hf.RwkvSelfAttention: RwkvSelfAttention,
    hf.RwkvFeedForward: RwkvFeedForward,
    hf.RwkvModel: RwkvModel,
    hf.RwkvForCausalLM: RwkvForCausalLM,
}


def make_batch_correct(model: torch.nn.Module) -> torch.nn.Module:
    """Swaps transformers' RWKV classes in `model` (loaded without `register()`) for the ones above, in place:
    the same parameters, the same saved folder."""
    for module in model.modules():
        if type(module) in _FIXED:
            module.__class__ = _FIXED[type(module)]
    return model


def register() -> None:
    """`AutoModelForCausalLM` builds and loads RWKV as the class above, in this process (idempotent)."""
    # exist_ok: replaces transformers' own class for its own config (checked before its mapping)
    tf.AutoModelForCausalLM.register(tf.RwkvConfig, RwkvForCausalLM, exist_ok=True)


register()
