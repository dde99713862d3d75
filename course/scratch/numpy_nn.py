"""NumPy만으로 만드는 신경망(neural network)입니다: 배치(batch) 선형층, softmax, 교차 엔트로피(cross-entropy)의
순전파(forward)와 역전파(backward)를 손으로 쓰고, 그것들로 작은 분류기(classifier)를 학습합니다.

모양(shape) 약속은 torch와 같습니다: 입력 x는 (N, in), 가중치 W는 (out, in), 편향 b는 (out,), 출력은 (N, out).
역전파 함수는 위에서 내려온 기울기 dout = d(손실)/d(출력)을 받아 입력과 파라미터의 기울기를 돌려줍니다.

    logits = linear_forward(x, W, b)
    loss = cross_entropy(logits, y)                  # 평균 -log p(정답)
    dlogits = cross_entropy_backward(logits, y)      # (softmax(logits) - one_hot(y)) / N
    dx, dW, db = linear_backward(dlogits, x, W)

    python -m course.scratch.numpy_nn   # 나선형(spiral) 2차원 데이터 세 부류를 분류하는 2층 신경망을 학습합니다

tests/test_scratch_numpy_nn.py가 값과 기울기를 torch(F.linear, F.softmax, F.cross_entropy와 autograd, float64)와
비교하고, 분류기가 우연(chance)보다 확실히 잘 맞히는지 확인합니다.
"""

from __future__ import annotations

import numpy as np

# ---- 층 하나씩: 순전파와 역전파 -----------------------------------------------------------------------------------------


def linear_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """배치 선형층(linear layer): (N, in) → (N, out), y = x Wᵀ + b.

    힌트: x @ W.T + b (b는 브로드캐스팅(broadcasting)으로 모든 행에 더해집니다).
    """
    return x @ W.T + b


def linear_backward(dout: np.ndarray, x: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """linear_forward의 역전파: dout (N, out)에서 (dx, dW, db)를 구합니다.

    힌트: dx = dout @ W (N, in), dW = dout.T @ x (out, in), db = dout.sum(axis=0) (out,). 모양이 맞는지 보면
    식이 보입니다.
    """
    return dout @ W, dout.T @ x, dout.sum(axis=0)


def relu(x: np.ndarray) -> np.ndarray:
    """max(0, x), 원소별(elementwise)."""
    return np.maximum(x, 0.0)


def relu_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """relu의 역전파: 입력이 양수였던 자리로만 기울기가 지나갑니다 (0에서는 torch처럼 0)."""
    return dout * (x > 0)


def softmax(z: np.ndarray) -> np.ndarray:
    """마지막 축의 softmax: exp(z_i) / Σ_j exp(z_j). 큰 값(예: 1000)에도 넘치지(overflow) 않습니다.

    힌트: 행마다 최댓값을 빼고(z - z.max(axis=-1, keepdims=True)) exp를 취한 뒤, 행의 합으로 나눕니다. 모든 값에
    같은 수를 빼도 softmax는 그대로입니다.
    """
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(dout: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """softmax의 역전파: 출력 probs = softmax(z)와 dout = d(손실)/d(probs)에서 d(손실)/dz를 구합니다.

    힌트: 야코비안(Jacobian) ∂p_i/∂z_j = p_i (δ_ij - p_j)를 곱하면 dz = p * (dout - Σ_j dout_j p_j) 입니다
    (합은 keepdims=True로 마지막 축에 대해).
    """
    return probs * (dout - (dout * probs).sum(axis=-1, keepdims=True))


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax(z) = z - logsumexp(z), 최댓값을 빼서 안정하게 계산합니다 (log(0)이 나오지 않습니다)."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """교차 엔트로피(cross-entropy) 손실: 정답 부류의 -log 확률을 배치에 대해 평균합니다 (F.cross_entropy와 같음).
    logits는 (N, C), targets는 정답 번호 (N,)입니다.

    힌트: softmax를 구한 뒤 log를 취하면 확률이 0으로 반올림될 때 -inf가 됩니다. log_softmax(logits)에서 정답 자리
    [np.arange(N), targets]를 골라 부호를 바꾸고 평균(mean)합니다.
    """
    n = logits.shape[0]
    return float(-log_softmax(logits)[np.arange(n), targets].mean())


def cross_entropy_backward(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """cross_entropy의 logits에 대한 기울기 (N, C).

    힌트: softmax와 -log를 함께 미분하면 간단해집니다: (softmax(logits) - one_hot(targets)) / N. one_hot은
    softmax 결과를 복사한 뒤 [np.arange(N), targets] 자리에서 1을 빼면 됩니다.
    """
    n = logits.shape[0]
    d = softmax(logits)
    d[np.arange(n), targets] -= 1.0
    return d / n


# ---- 작은 분류기: 선형 → relu → 선형 → 교차 엔트로피 -------------------------------------------------------------------


def init_params(n_in: int, n_hidden: int, n_classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """2층 신경망의 파라미터: 가중치는 torch의 nn.Linear처럼 ±1/sqrt(입력 수) 범위에서 고르게, 편향은 0입니다."""
    rng = np.random.default_rng(seed)
    return {
        "W1": rng.uniform(-1, 1, (n_hidden, n_in)) / np.sqrt(n_in),
        "b1": np.zeros(n_hidden),
        "W2": rng.uniform(-1, 1, (n_classes, n_hidden)) / np.sqrt(n_hidden),
        "b2": np.zeros(n_classes),
    }


def forward(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """분류기의 logits (N, C): linear → relu → linear."""
    return linear_forward(relu(linear_forward(x, params["W1"], params["b1"])), params["W2"], params["b2"])


def loss_and_grads(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """분류기의 손실과, 모든 파라미터에 대한 기울기 (순전파의 중간값을 기억해 두었다가 거꾸로 지나갑니다)."""
    h_pre = linear_forward(x, params["W1"], params["b1"])
    h = relu(h_pre)
    logits = linear_forward(h, params["W2"], params["b2"])
    loss = cross_entropy(logits, y)
    dlogits = cross_entropy_backward(logits, y)
    dh, dW2, db2 = linear_backward(dlogits, h, params["W2"])
    _, dW1, db1 = linear_backward(relu_backward(dh, h_pre), x, params["W1"])
    return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def make_spirals(n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: int = 0):
    """나선형(spiral) 2차원 데이터: 부류마다 팔 하나씩, 선형 분류기로는 나눌 수 없는 모양입니다. (x (N, 2), y (N,))."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(n_classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        theta = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0.0, noise, n_per_class)
        xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs), np.concatenate(ys)


def accuracy(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    return float((forward(params, x).argmax(axis=1) == y).mean())


def train_classifier(
    x: np.ndarray,
    y: np.ndarray,
    n_hidden: int = 64,
    steps: int = 500,
    lr: float = 1.0,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], list[float]]:
    """전체 배치 경사 하강법(full-batch gradient descent)으로 분류기를 학습합니다. (파라미터, 단계별 손실)."""
    params = init_params(x.shape[1], n_hidden, int(y.max()) + 1, seed)
    losses = []
    for _ in range(steps):
        loss, grads = loss_and_grads(params, x, y)
        for name in params:
            params[name] -= lr * grads[name]
        losses.append(loss)
    return params, losses


def main() -> None:
    x, y = make_spirals(seed=0)
    x_test, y_test = make_spirals(seed=1)
    params, losses = train_classifier(x, y)
    print(f"손실(loss): 처음 {losses[0]:.4f} → 마지막 {losses[-1]:.4f} ({len(losses)} 단계)")
    print(
        f"정확도(accuracy): 학습 {accuracy(params, x, y):.3f}, 새 데이터 {accuracy(params, x_test, y_test):.3f} (우연은 0.333)"
    )


if __name__ == "__main__":
    main()
