"""스칼라 자동 미분(autograd)을 손으로 만듭니다: 숫자 하나를 담는 `Value`와, 그 위에 쌓은 작은 신경망(MLP)입니다.

`Value`는 값(data)과 기울기(grad), 그리고 자신을 만든 연산의 입력들(_prev)을 기억합니다. 연산마다 "내 기울기를
입력들에게 나눠 주는" 작은 함수(_backward, 역전파 클로저)를 남겨 두고, `backward()`는 계산 그래프를 위상
정렬(topological sort)한 뒤 뒤에서부터 그 함수들을 한 번씩 부릅니다 (연쇄 법칙, chain rule).

    a = Value(2.0); b = Value(-3.0)
    c = a * b + a.exp()          # 순전파(forward): 값을 계산하며 그래프를 만듭니다
    c.backward()                 # 역전파(backward): a.grad = b + exp(a), b.grad = a
    MLP(2, [4, 1])([1.0, 0.0])   # Value로 만든 신경망의 출력 (Value 하나)

    python -m course.scratch.autograd   # XOR을 배우는 MLP를 학습하고 네 출력을 보여 줍니다

tests/test_scratch_autograd.py가 무작위 수식의 기울기를 torch.autograd(float64)와 비교하고(1e-6), XOR 학습을
확인합니다.
"""

from __future__ import annotations

import math
import random


class Value:
    """스칼라 하나와 그 기울기입니다. `+ - * / **`, exp, log, tanh, relu를 지원하고 `2 * v`처럼 숫자가 앞에 와도
    됩니다 (reversed operators). 지수(`v ** k`)는 상수 k만 받습니다."""

    def __init__(self, data: float, _children: tuple[Value, ...] = (), _op: str = ""):
        self.data = float(data)
        self.grad = 0.0  # d(출력)/d(이 값): backward()가 채웁니다
        self._backward = lambda: None  # 잎(leaf)은 나눠 줄 기울기가 없습니다
        self._prev = _children  # 이 값을 만든 연산의 입력들
        self._op = _op

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    # ---- 연산: 순전파 값과 역전파 클로저 -------------------------------------------------------------------------

    def __add__(self, other: Value | float) -> Value:
        """self + other.

        힌트: out = Value(a + b, (self, other)); 역전파에서는 두 입력 모두 out.grad를 그대로 더해 받습니다
        (grad += out.grad; 같은 값이 두 번 쓰일 수 있으니 = 가 아니라 +=).
        """
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | float) -> Value:
        """self * other.

        힌트: d(ab)/da = b, d(ab)/db = a 이므로 self.grad += other.data * out.grad, other.grad += self.data * out.grad.
        """
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, k: float) -> Value:
        """self ** k (k는 상수).

        힌트: d(x^k)/dx = k * x^(k-1) 이므로 self.grad += k * self.data ** (k - 1) * out.grad.
        """
        assert isinstance(k, int | float), "지수는 상수(int, float)만 받습니다"
        out = Value(self.data**k, (self,), f"**{k}")

        def _backward() -> None:
            self.grad += k * self.data ** (k - 1) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        """e ** self.

        힌트: d(e^x)/dx = e^x, 즉 출력값 자신이므로 self.grad += out.data * out.grad.
        """
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward() -> None:
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        """자연로그 ln(self) (self > 0).

        힌트: d(ln x)/dx = 1/x 이므로 self.grad += out.grad / self.data.
        """
        out = Value(math.log(self.data), (self,), "log")

        def _backward() -> None:
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        """tanh(self).

        힌트: t = math.tanh(x); d(tanh x)/dx = 1 - t^2 이므로 self.grad += (1 - t * t) * out.grad.
        """
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward() -> None:
            self.grad += (1.0 - t * t) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        """max(0, self).

        힌트: 양수일 때만 기울기가 1이므로 self.grad += (out.data > 0) * out.grad (0에서는 torch처럼 0).
        """
        out = Value(self.data if self.data > 0 else 0.0, (self,), "relu")

        def _backward() -> None:
            self.grad += (out.data > 0) * out.grad

        out._backward = _backward
        return out

    # ---- 위의 연산으로 만든 나머지 연산 (역전파를 따로 쓸 필요가 없습니다) ------------------------------------------

    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other)

    def __truediv__(self, other: Value | float) -> Value:
        return self * other**-1.0

    def __radd__(self, other: float) -> Value:  # other + self
        return self + other

    def __rsub__(self, other: float) -> Value:  # other - self
        return (-self) + other

    def __rmul__(self, other: float) -> Value:  # other * self
        return self * other

    def __rtruediv__(self, other: float) -> Value:  # other / self
        return self**-1.0 * other

    def __rpow__(self, base: float) -> Value:  # base ** self = e^(self * ln base), base > 0
        return (self * math.log(base)).exp()

    # ---- 역전파 ---------------------------------------------------------------------------------------------------

    def backward(self) -> None:
        """이 값(보통 손실, loss)에서 그래프의 모든 값으로 기울기를 보냅니다: 각 값의 .grad = d(self)/d(그 값).

        힌트: 모든 grad를 0으로 두고 self.grad = 1.0 으로 시작해, topological_order(self)를 뒤집은 순서로
        각 값의 _backward()를 한 번씩 부릅니다.
        """
        order = topological_order(self)
        for v in order:
            v.grad = 0.0
        self.grad = 1.0
        for v in reversed(order):
            v._backward()


def topological_order(root: Value) -> list[Value]:
    """root를 만든 그래프의 값들을 위상 정렬(topological sort)한 목록: 모든 값이 자신의 입력들보다 뒤에 옵니다
    (root가 맨 끝). 같은 값이 여러 번 쓰여도(공유된 부분식, shared subexpression) 한 번만 들어갑니다.

    힌트: 방문한 값을 집합(visited)에 기억하는 깊이 우선 탐색(DFS)으로, 입력들(_prev)을 모두 넣은 뒤에 자신을
    목록에 붙입니다 (후위 순서, post-order).
    """
    order: list[Value] = []
    visited: set[Value] = set()  # Value는 __eq__가 없어 객체 자체(identity)로 구분됩니다

    def visit(v: Value) -> None:
        if v in visited:
            return
        visited.add(v)
        for child in v._prev:
            visit(child)
        order.append(v)  # 입력들이 모두 목록에 들어간 뒤에 자신을 붙입니다

    visit(root)
    return order


# ---- Value로 만든 신경망 ----------------------------------------------------------------------------------------------


class Neuron:
    """뉴런 하나: 입력 nin개에 대한 가중치 w와 편향 b, 그리고 활성화 함수(nonlin: "tanh", "relu", None)."""

    def __init__(self, nin: int, nonlin: str | None = "tanh", rng: random.Random | None = None):
        rng = rng or random.Random(0)
        self.w = [Value(rng.uniform(-1.0, 1.0)) for _ in range(nin)]
        self.b = Value(0.0)
        self.nonlin = nonlin

    def __call__(self, x: list[Value | float]) -> Value:
        """순전파: act(w · x + b).

        힌트: s = sum((wi * xi for wi, xi in zip(self.w, x)), self.b); nonlin이 "tanh"면 s.tanh(), "relu"면 s.relu(),
        None이면 s를 그대로 돌려줍니다.
        """
        s = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        if self.nonlin == "tanh":
            return s.tanh()
        if self.nonlin == "relu":
            return s.relu()
        return s

    def parameters(self) -> list[Value]:
        return [*self.w, self.b]


class Layer:
    """같은 입력을 받는 뉴런 nout개입니다."""

    def __init__(self, nin: int, nout: int, nonlin: str | None = "tanh", rng: random.Random | None = None):
        rng = rng or random.Random(0)
        self.neurons = [Neuron(nin, nonlin, rng) for _ in range(nout)]

    def __call__(self, x: list[Value | float]) -> list[Value]:
        return [n(x) for n in self.neurons]

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]


class MLP:
    """다층 퍼셉트론(MLP): MLP(2, [4, 1])은 입력 2개 → tanh 뉴런 4개 → 선형 출력 1개입니다 (마지막 층만 활성화
    함수가 없습니다)."""

    def __init__(self, nin: int, nouts: list[int], nonlin: str = "tanh", seed: int = 0):
        rng = random.Random(seed)
        sizes = [nin, *nouts]
        self.layers = [
            Layer(sizes[i], sizes[i + 1], nonlin if i < len(nouts) - 1 else None, rng) for i in range(len(nouts))
        ]

    def __call__(self, x: list[Value | float]) -> Value | list[Value]:
        """순전파: 층들을 차례로 통과시킵니다. 출력이 하나면 Value 하나를, 여럿이면 목록을 돌려줍니다.

        힌트: for layer in self.layers: x = layer(x); 마지막에 len(x) == 1 이면 x[0].
        """
        for layer in self.layers:
            x = layer(x)
        return x[0] if len(x) == 1 else x

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]


XOR_INPUTS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
XOR_TARGETS = [-1.0, 1.0, 1.0, -1.0]  # 참은 +1, 거짓은 -1: 출력의 부호로 판정합니다


def train_xor(steps: int = 200, lr: float = 0.1, hidden: int = 4, seed: int = 0) -> tuple[MLP, list[float]]:
    """XOR을 배우는 MLP(2, [hidden, 1])을 경사 하강법(gradient descent)으로 학습합니다: 손실은 네 입력의 평균 제곱
    오차(MSE)입니다. 학습된 모델과 단계별 손실을 돌려줍니다."""
    model = MLP(2, [hidden, 1], seed=seed)
    losses = []
    for _ in range(steps):
        outputs = [model(x) for x in XOR_INPUTS]
        loss = sum(((out - t) ** 2 for out, t in zip(outputs, XOR_TARGETS, strict=True)), Value(0.0)) / len(XOR_INPUTS)
        loss.backward()
        for p in model.parameters():
            p.data -= lr * p.grad  # 기울기의 반대 방향으로 한 걸음
        losses.append(loss.data)
    return model, losses


def main() -> None:
    model, losses = train_xor()
    print(f"손실(loss): 처음 {losses[0]:.4f} → 마지막 {losses[-1]:.4f} ({len(losses)} 단계)")
    for x, t in zip(XOR_INPUTS, XOR_TARGETS, strict=True):
        out = model(x).data
        print(f"XOR{tuple(int(v) for v in x)} = {out:+.3f}  (정답 {t:+.0f}, {'맞음' if out * t > 0 else '틀림'})")


if __name__ == "__main__":
    main()
