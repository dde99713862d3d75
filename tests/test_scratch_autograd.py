"""The scalar autograd of the course (course/scratch/autograd.py) gives torch.autograd's gradients, and an MLP of its
Values learns XOR."""

import math
import random

import pytest
import torch

from course import scratch

autograd = scratch.load("autograd")
Value = autograd.Value

TOLERANCE = 1e-6  # |mine - torch's| <= 1e-6 * max(1, |torch's|), torch in float64


def _close(mine: float, want: float) -> bool:
    return abs(mine - want) <= TOLERANCE * max(1.0, abs(want))


def _leaves(values):
    return [Value(v) for v in values], [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]


# every op once, written in the syntax a Value and a torch tensor share (a > 0, b < 0)
SINGLE_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "neg": lambda a, b: -a,
    "pow_int": lambda a, b: b**3,
    "pow_float": lambda a, b: a**1.5,
    "pow_negative": lambda a, b: b**-2,
    "exp": lambda a, b: b.exp(),
    "log": lambda a, b: a.log(),
    "tanh": lambda a, b: b.tanh(),
    "relu": lambda a, b: a.relu() + 2 * b.relu(),
    "radd": lambda a, b: 2 + a,
    "rsub": lambda a, b: 1 - b,
    "rmul": lambda a, b: 2 * b,
    "rdiv": lambda a, b: 3 / b,
    "rpow": lambda a, b: 2**b,
    "same_operand_twice": lambda a, b: a * a + b / b + (a + a),
}


@pytest.mark.parametrize("op", list(SINGLE_OPS))
def test_each_op_gives_torchs_value_and_gradients(op):
    """One op on two leaves: the output and both leaves' gradients equal torch.autograd's (float64)."""
    (a, b), (ta, tb) = _leaves([0.7, -1.3])
    out, tout = SINGLE_OPS[op](a, b), SINGLE_OPS[op](ta, tb)
    out.backward()
    tout.backward()
    assert _close(out.data, tout.item())
    assert _close(a.grad, ta.grad.item() if ta.grad is not None else 0.0)
    assert _close(b.grad, tb.grad.item() if tb.grad is not None else 0.0)


UNARY = [
    lambda a: a.exp(),
    lambda a: (a * a + 0.5).log(),
    lambda a: a.tanh(),
    lambda a: a.relu(),
    lambda a: a**2,
    lambda a: (a * a + 1) ** -1.5,
    lambda a: -a,
    lambda a: 2 * a,
    lambda a: 1 - a,
    lambda a: 3 / (a * a + 1),
    lambda a: a + 1,
    lambda a: 2**a,
]
BINARY = [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a / (b * b + 0.5),
    lambda a, b: (a * a + b * b + 0.1).log(),
    lambda a, b: (a - b).relu(),
    lambda a, b: a * b.tanh() + a,
]


def _random_expression(seed: int, n_leaves: int = 4, n_nodes: int = 40):
    """The same random expression built twice, of Values and of float64 tensors: each new node applies a random op to
    random earlier nodes, so most nodes are used several times (shared subexpressions)."""
    rng = random.Random(seed)
    values = [rng.uniform(-2.0, 2.0) for _ in range(n_leaves)]
    mine, theirs = _leaves(values)
    for _ in range(n_nodes):
        pick = lambda: rng.randrange(max(0, len(mine) - 8), len(mine))  # noqa: E731 - recent nodes, reused often
        if rng.random() < 0.5:
            op, args = rng.choice(UNARY), [pick()]
        else:
            op, args = rng.choice(BINARY), [pick(), pick()]
        v, t = op(*(mine[i] for i in args)), op(*(theirs[i] for i in args))
        if abs(v.data) > 4.0:  # keep the magnitudes tame for exp and pow
            v, t = v.tanh() * 2, t.tanh() * 2
        t.retain_grad()
        mine.append(v)
        theirs.append(t)
    picks = rng.sample(range(len(mine)), 4)
    root = mine[-1] * mine[picks[0]] + sum((mine[i] for i in picks[1:]), Value(0.0))
    troot = theirs[-1] * theirs[picks[0]] + sum((theirs[i] for i in picks[1:]), torch.tensor(0.0, dtype=torch.float64))
    return root, troot, mine, theirs


@pytest.mark.parametrize("seed", range(8))
def test_random_expressions_with_shared_subexpressions_give_torchs_gradients(seed):
    """On a random expression of every op with heavily shared subexpressions, backward() gives every node (leaves
    and intermediate values) torch.autograd's gradient, and the forward value is torch's."""
    root, troot, mine, theirs = _random_expression(seed)
    root.backward()
    troot.backward()
    assert _close(root.data, troot.item())
    for i, (v, t) in enumerate(zip(mine, theirs, strict=True)):
        want = t.grad.item() if t.grad is not None else 0.0
        assert _close(v.grad, want), f"node {i}: grad {v.grad} but torch says {want}"


def test_topological_order_lists_each_value_once_after_its_inputs():
    """topological_order: every value of the graph exactly once, each after all of its inputs, the root last."""
    root, *_ = _random_expression(0)
    order = autograd.topological_order(root)
    position = {id(v): i for i, v in enumerate(order)}
    assert len(position) == len(order)
    assert order[-1] is root
    for v in order:
        assert all(id(child) in position and position[id(child)] < position[id(v)] for child in v._prev)


def test_an_mlps_output_and_parameter_gradients_equal_torchs():
    """MLP(3, [5, 4, 1]) (tanh hidden layers, linear output): with its weights copied into torch, the outputs and the
    gradients of a squared-error loss with respect to every weight equal torch.autograd's."""
    model = autograd.MLP(3, [5, 4, 1], seed=3)
    xs = [[0.5, -1.0, 2.0], [-0.3, 0.8, 0.1]]
    loss = sum((model(x) ** 2 for x in xs), Value(0.0))
    loss.backward()
    weights = [
        (
            torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=torch.float64, requires_grad=True),
            torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64, requires_grad=True),
        )
        for layer in model.layers
    ]
    h = torch.tensor(xs, dtype=torch.float64)
    for i, (w, b) in enumerate(weights):
        h = h @ w.T + b
        h = torch.tanh(h) if i < len(weights) - 1 else h
    (h**2).sum().backward()
    assert _close(loss.data, (h**2).sum().item())
    for layer, (w, b) in zip(model.layers, weights, strict=True):
        for j, n in enumerate(layer.neurons):
            assert all(_close(p.grad, g) for p, g in zip(n.w, w.grad[j].tolist(), strict=True))
            assert _close(n.b.grad, b.grad[j].item())


def test_an_mlp_of_values_learns_xor():
    """train_xor from a fixed seed: the loss falls and all four outputs are on the right side of zero (+1 for true,
    -1 for false)."""
    model, losses = autograd.train_xor(seed=0)
    assert losses[-1] < 0.1 * losses[0]
    for x, target in zip(autograd.XOR_INPUTS, autograd.XOR_TARGETS, strict=True):
        out = model(x).data
        assert math.copysign(1.0, out) == target, f"XOR{x} = {out}"
