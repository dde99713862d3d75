"""사전학습 루프(pretraining loop)와 샘플링(sampling)을 손으로 만듭니다: 배치, 학습/검증 손실, AdamW, warmup +
cosine 학습률 스케줄(learning-rate schedule), 기울기 자르기(gradient clipping), greedy / temperature / top-k 샘플링,
저장과 불러오기.

모델은 무엇이든 됩니다: `model(input_ids)`가 로짓(logits)을 (또는 `.logits`가 있는 출력을) 돌려주면 됩니다.
HF `LlamaForCausalLM`, kollm이 만드는 모델, 이 폴더의 minigpt.MiniGPT 모두 그렇습니다.

    batches = (get_batch(tokens, 8, 64, gen) for _ in range(cfg.steps))
    losses = train(model, batches, cfg)          # 단계마다의 학습 손실
    evaluate(model, val_tokens, 8, 64)           # 검증 손실
    generate(model, ids, 50, temperature=0.8, top_k=20)

    python -m course.scratch.pretrain --help     # miniGPT를 이 루프로 학습하고 세 가지 방법으로 글을 만듭니다

tests/test_scratch_pretrain.py가 같은 초기 가중치와 같은 배치로 이 루프와 kollm의 학습 틀(kollm.pretrain.train_on:
torch AdamW, 같은 스케줄과 clipping)이 20단계의 손실을 1e-4 안에서 똑같이 내는지 확인합니다.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class TrainConfig:
    steps: int = 1000
    lr: float = 3e-3  # 최대 학습률
    warmup_steps: int = 50  # 이 단계 동안 0에서 lr까지 곧게 올립니다
    min_lr_ratio: float = 0.1  # cosine이 끝나는 곳: lr * min_lr_ratio
    weight_decay: float = 0.1  # 2차원 이상 가중치(행렬, 임베딩)에만
    grad_clip: float = 1.0  # 전체 기울기 노름(norm)의 상한
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8


def get_batch(tokens, batch_size: int, seq_len: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """토큰 줄(1차원)의 무작위 위치에서 seq_len+1개씩 자른 창: 입력 x와 한 칸 밀린 정답 y, 둘 다 [batch, seq_len]."""
    starts = torch.randint(0, len(tokens) - seq_len - 1, (batch_size,), generator=gen).tolist()
    rows = np.stack([np.asarray(tokens[s : s + seq_len + 1]).astype(np.int64) for s in starts])
    x = torch.from_numpy(rows)
    return x[:, :-1], x[:, 1:]


def logits_of(model, ids: torch.Tensor) -> torch.Tensor:
    out = model(ids)
    return out.logits if hasattr(out, "logits") else out


def lm_loss(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """다음 토큰 예측의 평균 교차 엔트로피(cross-entropy), 토큰당 nats.

    힌트: logits = logits_of(model, x)를 [B*T, vocab]로, y를 [B*T]로 펴서 F.cross_entropy (logits는 .float()로).
    """
    logits = logits_of(model, x)
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """step번째(0부터) 단계의 학습률: warmup 동안 곧게 오르고, 그 뒤 cosine으로 lr * min_lr_ratio까지 내려갑니다.

    힌트: step < warmup이면 lr * (step + 1) / warmup. 아니면 p = (step - warmup) / max(1, steps - warmup)를 1로 자르고
    c = 0.5 * (1 + cos(pi * p)); lr * (min_lr_ratio + (1 - min_lr_ratio) * c).
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


@torch.no_grad()
def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """모든 기울기를 한 벡터로 본 L2 노름이 max_norm을 넘으면 그 비율만큼 줄입니다. 줄이기 전의 노름을 돌려줍니다.

    힌트: total = sqrt(각 p.grad 노름의 제곱 합); coef = min(1, max_norm / (total + 1e-6)); 모든 p.grad에 coef를 곱합니다.
    """
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef)
    return total


def param_groups(model, weight_decay: float) -> list[dict]:
    """가중치 감쇠(weight decay)를 받는 무리(2차원 이상: 행렬과 임베딩)와 받지 않는 무리(편향, 정규화의 이득)."""
    params = [p for p in model.parameters() if p.requires_grad]  # 묶인(tied) 가중치는 한 번만 나옵니다
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


class AdamW:
    """AdamW (Loshchilov & Hutter): 기울기의 이동 평균 m과 제곱의 이동 평균 v로 걸음을 정하고, 가중치 감쇠는
    기울기와 따로(decoupled) 가중치에 직접 겁니다."""

    def __init__(self, groups: list[dict], betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8):
        self.groups, self.betas, self.eps = groups, betas, eps
        self.t = 0  # 지금까지의 step 수
        self.m: dict[torch.Tensor, torch.Tensor] = {}
        self.v: dict[torch.Tensor, torch.Tensor] = {}

    def zero_grad(self) -> None:
        for group in self.groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """모든 파라미터를 한 걸음 옮깁니다.

        힌트: t += 1; 각 p마다 p *= 1 - lr * wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). m, v는 처음에 0 (self.m[p], self.v[p]).
        """
        self.t += 1
        b1, b2 = self.betas
        for group in self.groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                m = self.m.setdefault(p, torch.zeros_like(p))
                v = self.v.setdefault(p, torch.zeros_like(p))
                p.mul_(1 - lr * group["weight_decay"])
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = v.sqrt() / math.sqrt(1 - b2**self.t) + self.eps
                p.addcdiv_(m, denom, value=-lr / (1 - b1**self.t))


def train_step(model, optimizer: AdamW, x: torch.Tensor, y: torch.Tensor, step: int, cfg: TrainConfig):
    """한 단계: (손실, 자르기 전 기울기 노름)을 돌려줍니다.

    힌트: 기울기 비우기(zero_grad) -> loss = lm_loss -> loss.backward() -> clip_grad_norm(모든 파라미터, grad_clip)
    -> optimizer.step(lr_at(step, cfg)).
    """
    optimizer.zero_grad()
    loss = lm_loss(model, x, y)
    loss.backward()
    norm = clip_grad_norm([p for g in optimizer.groups for p in g["params"]], cfg.grad_clip)
    optimizer.step(lr_at(step, cfg))
    return loss.item(), norm.item()


def train(model, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], cfg: TrainConfig, log_every: int = 0):
    """cfg.steps 단계를 `batches`로 학습합니다. 돌려주는 것: 단계마다의 학습 손실과 기울기 노름."""
    optimizer = AdamW(param_groups(model, cfg.weight_decay), cfg.betas, cfg.eps)
    model.train()
    losses, norms = [], []
    for step, (x, y) in zip(range(cfg.steps), batches, strict=False):
        loss, norm = train_step(model, optimizer, x, y, step, cfg)
        losses.append(loss)
        norms.append(norm)
        if log_every and (step % log_every == 0 or step == cfg.steps - 1):
            print(f"step {step:5d}  loss {loss:.4f}  lr {lr_at(step, cfg):.2e}  grad norm {norm:.3f}", flush=True)
    return losses, norms


@torch.no_grad()
def evaluate(model, tokens, batch_size: int, seq_len: int, batches: int = 4, seed: int = 0) -> float:
    """검증 손실: 고정된 시드의 배치 몇 개에서 lm_loss의 평균 (dropout을 끄는 eval 모드로)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    losses = [lm_loss(model, *get_batch(tokens, batch_size, seq_len, gen)).item() for _ in range(batches)]
    model.train(was_training)
    return float(np.mean(losses))


def next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, gen=None) -> torch.Tensor:
    """마지막 위치의 로짓 [B, vocab]에서 다음 토큰 [B, 1]을 고릅니다. temperature == 0이면 greedy(가장 큰 값).

    힌트: temperature == 0이면 argmax. 아니면 logits / temperature; top_k가 있으면 k번째로 큰 값보다 작은 로짓을
    -inf로; softmax한 확률에서 torch.multinomial(probs, 1, generator=gen).
    """
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))  # k번째와 같은 값(동점)은 모두 남습니다
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=gen)


@torch.no_grad()
def generate(
    model,
    ids: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    gen: torch.Generator | None = None,
    context: int | None = None,
) -> torch.Tensor:
    """ids [B, T] 뒤에 토큰을 max_new_tokens개 이어 붙입니다 (KV 캐시 없이 매번 전체를 다시 계산합니다).
    context: 모델에 넣는 마지막 토큰 수의 상한 (위치 임베딩 길이가 정해진 모델)."""
    was_training = model.training
    model.eval()
    for _ in range(max_new_tokens):
        window = ids if context is None else ids[:, -context:]
        ids = torch.cat([ids, next_token(logits_of(model, window)[:, -1, :], temperature, top_k, gen)], dim=1)
    model.train(was_training)
    return ids


def save(model, path: str) -> None:
    """가중치만 저장합니다 (state_dict: 이름 -> 텐서; 묶인 가중치는 한 저장소를 함께 씁니다)."""
    torch.save(model.state_dict(), path)


def load(model, path: str):
    """save()한 가중치를 같은 구조의 모델에 넣습니다. weights_only=True: 텐서만 읽고 임의의 파이썬 객체는 거부합니다."""
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


def main(argv: list[str] | None = None) -> dict:
    from course.scratch import minigpt

    p = argparse.ArgumentParser(
        prog="python -m course.scratch.pretrain",
        description="train the miniGPT (course/scratch/minigpt.py) with this loop on NSMC characters, then sample",
    )
    p.add_argument("--data-dir", default=minigpt.DATA_DIR)
    p.add_argument("--reviews", type=int, default=20_000)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup-steps", type=int, default=30)
    p.add_argument("--out", default="runs/scratch_pretrain.pt", help="where the weights are saved")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    train_text, val_text = minigpt.load_reviews(args.data_dir, args.reviews)
    vocab = minigpt.Vocab(train_text)
    tokens, val_tokens = vocab.encode(train_text).numpy(), vocab.encode(val_text).numpy()
    model = minigpt.MiniGPT(minigpt.Config(len(vocab.chars), args.seq_len, n_layer=2, n_head=4, n_embd=64))
    cfg = TrainConfig(steps=args.steps, lr=args.lr, warmup_steps=args.warmup_steps)
    gen = torch.Generator().manual_seed(0)
    print(f"validation loss before: {evaluate(model, val_tokens, args.batch_size, args.seq_len):.3f}")
    batches = (get_batch(tokens, args.batch_size, args.seq_len, gen) for _ in range(cfg.steps))
    train(model, batches, cfg, log_every=max(1, cfg.steps // 10))
    val = evaluate(model, val_tokens, args.batch_size, args.seq_len)
    print(f"validation loss after: {val:.3f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save(model, args.out)
    print(f"saved {args.out}")
    prompt = vocab.encode("이 영화")[None]
    samples = {}
    for name, t, k in (("greedy", 0.0, None), ("temperature 0.8", 0.8, None), ("temperature 0.8, top-k 10", 0.8, 10)):
        out = generate(model, prompt, 60, t, k, gen, context=args.seq_len)
        samples[name] = vocab.decode(out[0].tolist())
        print(f"--- {name} ---\n{samples[name]}")
    return {"val_loss": val, "samples": samples}


if __name__ == "__main__":
    main()
