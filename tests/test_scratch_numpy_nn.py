"""The NumPy network of the course (course/scratch/numpy_nn.py): its linear layer, softmax and cross-entropy give
torch's values and gradients (torch.nn.functional with autograd, float64), and a classifier trained with them learns."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course import scratch

numpy_nn = scratch.load("numpy_nn")

RTOL, ATOL = 1e-10, 1e-10  # float64 on both sides: only the order of the sums differs


def _t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _same(mine, want: torch.Tensor) -> None:
    np.testing.assert_allclose(np.asarray(mine), want.detach().numpy(), rtol=RTOL, atol=ATOL)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_linear_forward_and_backward_equal_torchs(rng):
    """linear_forward equals F.linear, and linear_backward's (dx, dW, db) for a random upstream gradient equal
    torch.autograd's."""
    x, W, b = rng.normal(size=(7, 5)), rng.normal(size=(3, 5)), rng.normal(size=3)
    dout = rng.normal(size=(7, 3))
    out = numpy_nn.linear_forward(x, W, b)
    tx, tW, tb = _t(x, True), _t(W, True), _t(b, True)
    tout = F.linear(tx, tW, tb)
    _same(out, tout)
    (tout * _t(dout)).sum().backward()
    dx, dW, db = numpy_nn.linear_backward(dout, x, W)
    _same(dx, tx.grad)
    _same(dW, tW.grad)
    _same(db, tb.grad)


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_softmax_and_its_backward_equal_torchs(rng, scale):
    """softmax equals F.softmax (also on logits of size 1000, where a naive exp overflows) and softmax_backward's
    gradient for a random upstream gradient equals torch.autograd's."""
    z = rng.normal(size=(6, 4)) * scale
    dout = rng.normal(size=(6, 4))
    with np.errstate(over="raise", invalid="raise"):
        probs = numpy_nn.softmax(z)
    tz = _t(z, True)
    tprobs = F.softmax(tz, dim=-1)
    _same(probs, tprobs)
    (tprobs * _t(dout)).sum().backward()
    _same(numpy_nn.softmax_backward(dout, probs), tz.grad)


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_cross_entropy_and_its_gradient_equal_torchs(rng, scale):
    """cross_entropy equals F.cross_entropy (mean over the batch) and cross_entropy_backward equals the gradient
    torch.autograd gives the logits, also on logits of size 1000 (where the right class's probability rounds to 0 and a
    naive log(softmax) is -inf)."""
    logits = rng.normal(size=(8, 5)) * scale
    targets = rng.integers(0, 5, size=8)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss = numpy_nn.cross_entropy(logits, targets)
        grad = numpy_nn.cross_entropy_backward(logits, targets)
    tlogits = _t(logits, True)
    tloss = F.cross_entropy(tlogits, torch.tensor(targets))
    tloss.backward()
    assert np.isfinite(loss)
    _same(loss, tloss)
    _same(grad, tlogits.grad)


def test_the_classifiers_loss_and_gradients_equal_torchs(rng):
    """The whole classifier (linear, relu, linear, cross-entropy): its loss and the gradients of all four
    parameters, chained by hand, equal torch.autograd's on the same weights."""
    x, y = numpy_nn.make_spirals(n_per_class=20, seed=2)
    params = numpy_nn.init_params(2, 16, 3, seed=1)
    params["b1"] = rng.normal(size=16) * 0.1  # nonzero biases, so db is not trivially checked
    loss, grads = numpy_nn.loss_and_grads(params, x, y)
    t = {k: _t(v, True) for k, v in params.items()}
    tlogits = F.linear(F.relu(F.linear(_t(x), t["W1"], t["b1"])), t["W2"], t["b2"])
    tloss = F.cross_entropy(tlogits, torch.tensor(y))
    tloss.backward()
    _same(numpy_nn.forward(params, x), tlogits)
    _same(loss, tloss)
    for name in params:
        _same(grads[name], t[name].grad)


def test_the_classifier_learns_the_spirals():
    """Trained by gradient descent on three interleaved spirals (which no linear classifier separates), the
    classifier's loss falls and it classifies fresh spirals from another seed far above chance (1/3)."""
    x, y = numpy_nn.make_spirals(seed=0)
    x_test, y_test = numpy_nn.make_spirals(seed=1)
    params, losses = numpy_nn.train_classifier(x, y, steps=300)
    assert losses[-1] < 0.3 * losses[0]
    assert numpy_nn.accuracy(params, x_test, y_test) > 0.9
