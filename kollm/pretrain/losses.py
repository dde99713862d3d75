"""Fused, chunked linear + cross-entropy: the LM head and its loss without the full logits.

The plain way computes logits = hidden @ W.T for every token ([tokens, vocab], 4096 x 8000
for the tiny preset), upcasts them to fp32, and autograd keeps them for a log-softmax
backward that writes another tensor of the same size. On a CPU that memory traffic, not
the matmul, was 40% of a training step (torch profiler: log_softmax backward 100 ms, its
forward 30 ms, the fills and copies of those tensors 60 ms, of a 500 ms step).

Here the tokens are taken a chunk at a time: logits of the chunk, their softmax, and at
once the gradients (softmax - onehot) @ W for the hidden states and its transpose product
for W, which are kept for the backward pass. The full logits never exist, and the backward
pass is a multiplication by the incoming gradient. The same idea as Liger Kernel's fused
linear cross-entropy and Apple's Cut Cross-Entropy, in plain PyTorch (any device).

Numerics: the matmuls run in `compute_dtype` (bf16 under autocast, as they would for the
plain LM head), softmax and the loss in fp32, W's gradient accumulated over chunks in fp32.
"""

from __future__ import annotations

import torch


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, labels, chunk_size: int, ignore_index: int, compute_dtype):
        need_hidden_grad, need_weight_grad = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        h = hidden.to(compute_dtype)
        w = weight.to(compute_dtype)
        valid = labels != ignore_index
        count = valid.sum().clamp(min=1)  # mean over the tokens that count, like F.cross_entropy
        safe_labels = labels.masked_fill(~valid, 0)
        grad_hidden = torch.empty_like(h) if need_hidden_grad else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_weight_grad else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, h.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            h_c, y_c, valid_c = h[rows], safe_labels[rows], valid[rows]
            logits = (h_c @ w.T).float()
            target_logit = logits.gather(1, y_c.unsqueeze(1))
            # one exp pass serves both the log-sum-exp and the softmax
            row_max = logits.amax(dim=1, keepdim=True)
            probs = logits.sub_(row_max).exp_()
            sums = probs.sum(dim=1, keepdim=True)
            total += ((sums.log() + row_max - target_logit).squeeze(1) * valid_c).sum()
            if grad_hidden is None and grad_weight is None:
                continue
            # d(mean loss)/d(logits) = (softmax - onehot) / count, zero on ignored tokens
            probs.div_(sums)
            probs[torch.arange(len(y_c), device=probs.device), y_c] -= 1
            probs.mul_((valid_c / count).unsqueeze(1))
            d_logits = probs.to(compute_dtype)
            if grad_hidden is not None:
                torch.mm(d_logits, w, out=grad_hidden[rows])
            if grad_weight is not None:
                grad_weight += (d_logits.T @ h_c).float()
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.hidden_dtype = hidden.dtype
        return total / count

    @staticmethod
    def backward(ctx, grad_loss):
        grad_hidden, grad_weight = ctx.saved_tensors
        return (
            None if grad_hidden is None else (grad_hidden * grad_loss).to(ctx.hidden_dtype),
            None if grad_weight is None else grad_weight * grad_loss,
            None,
            None,
            None,
            None,
        )


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, chunk_size: int = 256, ignore_index: int = -100
) -> torch.Tensor:
    """Mean cross-entropy of `hidden @ weight.T` against `labels`, chunk_size tokens at a time.

    hidden [tokens, dim], weight [vocab, dim] (the LM head), labels [tokens] (ignore_index skips a
    token). Equal to `F.cross_entropy((hidden @ weight.T).float(), labels)` and its gradients, to
    rounding; under autocast the matmuls use the autocast dtype.
    """
    if hidden.dim() != 2 or labels.shape != hidden.shape[:1] or weight.shape[1] != hidden.shape[1]:
        raise ValueError(
            f"hidden [tokens, dim], weight [vocab, dim], labels [tokens] expected; got "
            f"{tuple(hidden.shape)}, {tuple(weight.shape)}, {tuple(labels.shape)}"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, not {chunk_size}")
    device = hidden.device.type
    compute_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    with torch.autocast(device_type=device, enabled=False):  # the dtypes above are explicit
        return _LinearCrossEntropy.apply(hidden, weight, labels, chunk_size, ignore_index, compute_dtype)
