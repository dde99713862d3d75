"""The fused, chunked LM-head + cross-entropy equals the plain one, in value and in gradients."""

import pytest
import torch
import torch.nn.functional as F

from kollm.pretrain.losses import linear_cross_entropy


def _case(tokens=300, dim=24, vocab=500, seed=0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(tokens, dim, generator=gen).requires_grad_()
    weight = (torch.randn(vocab, dim, generator=gen) * 0.5).requires_grad_()
    labels = torch.randint(0, vocab, (tokens,), generator=gen)
    labels[::9] = -100  # ignored tokens (padding, prompts) count neither in the sum nor in the mean
    return hidden, weight, labels


def _loss_and_grads(fn, hidden, weight, labels):
    hidden.grad = weight.grad = None
    loss = fn(hidden, weight, labels)
    loss.backward()
    return loss.detach(), hidden.grad.clone(), weight.grad.clone()


@pytest.mark.parametrize("chunk_size", [1, 37, 300, 1000])  # one token, uneven chunks, exactly all, more than all
def test_matches_plain_cross_entropy_in_fp32(chunk_size):
    hidden, weight, labels = _case()
    ref = _loss_and_grads(lambda h, w, y: F.cross_entropy(h @ w.T, y), hidden, weight, labels)
    out = _loss_and_grads(lambda h, w, y: linear_cross_entropy(h, w, y, chunk_size=chunk_size), hidden, weight, labels)
    assert torch.allclose(out[0], ref[0], rtol=1e-6, atol=1e-6)
    assert torch.allclose(out[1], ref[1], rtol=1e-4, atol=1e-7)
    assert torch.allclose(out[2], ref[2], rtol=1e-4, atol=1e-7)
    assert out[1][::9].abs().max() == 0  # an ignored token gets no gradient


def test_bf16_autocast_matches_the_autocast_lm_head():
    """Under autocast the matmuls run in bf16 as the plain LM head's do; grads stay fp32 for fp32 weights."""
    hidden, weight, labels = _case(tokens=512, dim=64, vocab=2000)

    def plain(h, w, y):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = h @ w.T
        return F.cross_entropy(logits.float(), y)

    def fused(h, w, y):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return linear_cross_entropy(h, w, y, chunk_size=100)

    ref, out = _loss_and_grads(plain, hidden, weight, labels), _loss_and_grads(fused, hidden, weight, labels)
    assert abs(out[0] - ref[0]) < 1e-3 * ref[0]
    for got, want in zip(out[1:], ref[1:]):
        assert got.dtype == torch.float32
        assert (got - want).abs().max() < 2e-2 * want.abs().max()


def test_large_logit_gaps_give_finite_losses():
    """A target 200 nats below the best logit: exp would underflow; the loss must still be ~200, not inf."""
    hidden = torch.zeros(2, 2)
    hidden[:, 0] = 1.0
    weight = torch.tensor([[200.0, 0.0], [0.0, 0.0], [-5.0, 0.0]])
    labels = torch.tensor([1, 0])
    loss = linear_cross_entropy(hidden, weight, labels)
    assert torch.isfinite(loss) and torch.allclose(loss, F.cross_entropy(hidden @ weight.T, labels))


def test_without_grad_only_the_loss_is_computed():
    hidden, weight, labels = _case()
    with torch.no_grad():
        loss = linear_cross_entropy(hidden, weight, labels, chunk_size=64)
    assert not loss.requires_grad
    assert torch.allclose(loss, F.cross_entropy(hidden.detach() @ weight.detach().T, labels), atol=1e-6)


def test_shape_mismatch_is_a_clear_error():
    hidden, weight, labels = _case()
    with pytest.raises(ValueError, match="labels \\[tokens\\]"):
        linear_cross_entropy(hidden, weight, labels[:-1])
    with pytest.raises(ValueError, match="chunk_size"):
        linear_cross_entropy(hidden, weight, labels, chunk_size=0)
