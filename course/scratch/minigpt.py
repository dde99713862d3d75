"""miniGPT: nanoGPT 방식의 문자 단위(character-level) GPT를 파일 하나로 만듭니다 (글자 하나가 토큰 하나).

네이버 영화 리뷰(NSMC)의 한국어 문장으로 다음 글자를 예측하도록 학습하고, temperature와 top-k로 글을 만들고,
한 헤드(head)가 어느 글자를 보는지 주의 지도(attention map) 그림으로 저장합니다. 이 파일만 읽어도 되도록
attention, 블록(block), 모델을 모두 여기에 적었습니다 (torch와 표준 라이브러리만 씁니다).

    python -m course.scratch.minigpt --help
    python -m course.scratch.minigpt --steps 1000 --out runs/minigpt   # 노트북 CPU 한 코어에서 4분쯤

tests/test_scratch_minigpt.py가 attention을 torch의 scaled_dot_product_attention과 비교하고, 짧은 학습 뒤 검증
글자 손실이 문자 유니그램(unigram) 모델보다 낮은지, top_k=1 샘플링이 greedy와 같은지 확인합니다.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA_DIR = os.environ.get("KOLLM_DATA_DIR") or os.path.join(os.path.dirname(REPO), "shared", "data")
UNK = "\ufffd"  # 학습 글에 없던 글자


def load_reviews(data_dir: str, reviews: int) -> tuple[str, str]:
    """NSMC 리뷰 앞 `reviews`개를 줄바꿈으로 이은 (학습 글, 검증 글). movie_id % 10 == 0인 영화는 검증 쪽입니다
    (영화 단위로 나눠 같은 영화의 리뷰가 양쪽에 섞이지 않게)."""
    train, val = [], []
    with gzip.open(os.path.join(data_dir, "nsmc", "reviews.jsonl.gz"), "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= reviews:
                break
            row = json.loads(line)
            (val if row["movie_id"] % 10 == 0 else train).append(row["text"])
    return "\n".join(train) + "\n", "\n".join(val) + "\n"


class Vocab:
    """글자 <-> 번호. 학습 글의 글자들과 UNK 하나."""

    def __init__(self, text: str):
        self.chars = sorted(set(text) | {UNK})
        self.index = {c: i for i, c in enumerate(self.chars)}

    def encode(self, text: str) -> torch.Tensor:
        unk = self.index[UNK]
        return torch.tensor([self.index.get(c, unk) for c in text], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)


@dataclass
class Config:
    vocab_size: int
    block_size: int = 64  # 한 번에 보는 글자 수 (문맥 길이, context length)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)  # q, k, v를 한 번에
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.dropout)
        self.register_buffer("mask", torch.tril(torch.ones(cfg.block_size, cfg.block_size, dtype=torch.bool)))
        self.att = None  # 마지막 순전파의 주의 가중치 [B, head, T, T]: 그림에 씁니다

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, C] -> [B, T, C]. 인과(causal) 다중 헤드(multi-head) 주의.

        힌트: q, k, v = c_attn(x).split(C) 후 [B, head, T, C/head]로 바꾸고, att = q @ k^T / sqrt(C/head)에서
        mask가 False인 자리(미래)를 -inf로 채워 softmax합니다. self.att에 att를 남기고, dropout(att) @ v를 다시
        [B, T, C]로 붙여 c_proj에 통과시킵니다.
        """
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(dim=-1)
        self.att = att.detach()
        y = self.dropout(att) @ v  # [B, head, T, C/head]
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """pre-norm 블록: x + attention(LN(x)), 그다음 x + MLP(LN(x))."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(cfg.n_embd), nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        hidden = 4 * cfg.n_embd
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, hidden), nn.GELU(), nn.Linear(hidden, cfg.n_embd), nn.Dropout(cfg.dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class MiniGPT(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # 글자 임베딩
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd)  # 학습되는 위치 임베딩
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx [B, T] -> 다음 글자의 로짓(logits) [B, T, vocab]."""
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.size(1), device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def get_batch(data: torch.Tensor, block_size: int, batch_size: int, gen: torch.Generator):
    """무작위 위치에서 자른 block_size+1 글자 창(window): 입력 x와 한 칸 밀린 정답 y."""
    starts = torch.randint(0, len(data) - block_size - 1, (batch_size,), generator=gen)
    rows = torch.stack([data[s : s + block_size + 1] for s in starts.tolist()])
    return rows[:, :-1], rows[:, 1:]


def train_step(model: MiniGPT, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """한 번의 학습 단계(step). 손실(loss)을 돌려줍니다.

    힌트: loss = F.cross_entropy(model(x)를 [B*T, vocab]로, y를 [B*T]로); optimizer.zero_grad(), loss.backward(),
    optimizer.step() 순서입니다.
    """
    logits = model(x)
    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def heldout_loss(model: MiniGPT, data: torch.Tensor, max_windows: int = 200) -> tuple[float, torch.Tensor]:
    """검증 글을 겹치지 않는 block_size+1 창으로 잘라 예측한 글자들의 평균 손실(nats/글자)과, 그 정답 글자들."""
    n = model.cfg.block_size + 1
    windows = data[: min(len(data) // n, max_windows) * n].view(-1, n)
    model.eval()
    logits = model(windows[:, :-1])
    model.train()
    targets = windows[:, 1:].reshape(-1)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets).item(), targets


def unigram_loss(train: torch.Tensor, targets: torch.Tensor, vocab_size: int) -> float:
    """비교 기준: 학습 글의 글자 빈도(add-one smoothing)만 쓰는 모델이 `targets`에 내는 평균 손실."""
    counts = torch.bincount(train, minlength=vocab_size).double() + 1
    return -(counts / counts.sum()).log()[targets].mean().item()


@torch.no_grad()
def generate(
    model: MiniGPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """idx [B, T] 뒤에 글자를 max_new_tokens개 이어 붙입니다.

    힌트: 마지막 block_size 글자만 넣어 마지막 위치의 로짓을 temperature로 나누고, top_k가 있으면 k번째로 큰
    값보다 작은 로짓을 -inf로 바꾼 뒤 softmax 확률에서 torch.multinomial(probs, 1, generator=gen)로 뽑아 붙입니다.
    """
    for _ in range(max_new_tokens):
        logits = model(idx[:, -model.cfg.block_size :])[:, -1, :] / temperature
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))  # 동점(tie)인 글자는 모두 남습니다
        idx = torch.cat([idx, torch.multinomial(logits.softmax(-1), 1, generator=gen)], dim=1)
    return idx


def korean_font() -> str | None:
    """Hangul 글리프가 있는 글꼴 파일: koreanize-matplotlib의 NanumGothic, 없으면 `fc-list :lang=ko`의 첫 글꼴.
    둘 다 없으면 None (그림은 그려지지만 한글 대신 ?가 보입니다)."""
    import importlib.util

    spec = importlib.util.find_spec("koreanize_matplotlib")
    nanum = os.path.join(spec.submodule_search_locations[0], "fonts", "NanumGothic.ttf") if spec else ""
    if os.path.isfile(nanum):
        return nanum
    try:
        listed = subprocess.run(["fc-list", ":lang=ko", "file"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = [line.split(":")[0].strip() for line in listed.splitlines() if line.strip()]
    return files[0] if files else None


def save_attention_picture(model: MiniGPT, vocab: Vocab, text: str, path: str, layer: int = -1, head: int = 0) -> str:
    """`text`를 넣었을 때 layer층 head번 헤드의 주의 가중치를 그림으로 저장합니다 (행: 보는 글자, 열: 보이는 글자; 빈칸은 _)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    text = text[: model.cfg.block_size]
    with torch.no_grad():
        model.eval()(vocab.encode(text)[None])
    model.train()
    att = model.blocks[layer].attn.att[0, head].numpy()
    font = korean_font()
    props = font_manager.FontProperties(fname=font) if font else None
    if font is None:
        print("warning: no font with Hangul found (install fonts-nanum or koreanize-matplotlib): labels show ?")
    labels = ["_" if c == " " else c for c in text] if font else [c if c.isascii() else "?" for c in text]
    fig, ax = plt.subplots(figsize=(0.28 * len(text) + 2, 0.28 * len(text) + 1.5))
    fig.colorbar(ax.imshow(att, cmap="viridis", vmin=0.0), ax=ax, shrink=0.8)
    ax.set_xticks(range(len(text)), labels, fontproperties=props, fontsize=9)
    ax.set_yticks(range(len(text)), labels, fontproperties=props, fontsize=9)
    ax.set_title(f"miniGPT attention: layer {layer % len(model.blocks)}, head {head} (row: query, column: key)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m course.scratch.minigpt", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data-dir", default=DATA_DIR, help="the shared data folder (default: $KOLLM_DATA_DIR, ../shared/data)"
    )
    p.add_argument("--out", default="runs/minigpt", help="folder for attention.png, sample.txt, model.pt")
    for name, default, what in (
        ("reviews", 100_000, "NSMC reviews to read (train + held-out)"),
        ("steps", 1000, "training steps (1000: about 4 CPU-minutes on one core)"),
        ("batch-size", 32, "windows per step"),
        ("block-size", 64, "context length in characters"),
        ("n-layer", 4, "blocks"),
        ("n-head", 4, "attention heads"),
        ("n-embd", 128, "width"),
        ("lr", 3e-3, "peak learning rate (100 warmup steps, then cosine to 0)"),
        ("seed", 0, "random seed"),
        ("temperature", 0.8, "sampling temperature"),
        ("top-k", 20, "sample among the k most likely characters"),
        ("sample-chars", 300, "characters to generate"),
        ("layer", -1, "the attention picture's layer (-1: the last)"),
        ("head", 0, "the attention picture's head"),
        ("text", "", "the attention picture's sentence (default: the first held-out review of 20-64 known characters)"),
    ):
        shown = f" (default: {default})" if default != "" else ""
        p.add_argument(f"--{name}", type=type(default), default=default, help=what + shown)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    train_text, val_text = load_reviews(args.data_dir, args.reviews)
    vocab = Vocab(train_text)
    train, val = vocab.encode(train_text), vocab.encode(val_text)
    cfg = Config(len(vocab.chars), args.block_size, args.n_layer, args.n_head, args.n_embd)
    model = MiniGPT(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(args.seed)
    print(
        f"{len(train):,} training characters, {cfg.vocab_size} distinct; {sum(p.numel() for p in model.parameters()):,} parameters"
    )
    start = time.process_time()  # CPU 시간: 바쁜 기계에서도 같은 값
    for step in range(args.steps):
        for group in optimizer.param_groups:  # warmup + cosine
            group["lr"] = args.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        loss = train_step(model, optimizer, *get_batch(train, cfg.block_size, args.batch_size, gen))
        if step % max(1, args.steps // 10) == 0 or step == args.steps - 1:
            print(f"step {step:5d}  train loss {loss:.3f}  held-out {heldout_loss(model, val)[0]:.3f}", flush=True)
    minutes = (time.process_time() - start) / 60
    held, targets = heldout_loss(model, val)
    uni = unigram_loss(train, targets, cfg.vocab_size)
    sample = vocab.decode(
        generate(model, vocab.encode("\n")[None], args.sample_chars, args.temperature, args.top_k, gen)[0, 1:].tolist()
    )
    known = [r for r in val_text.split("\n") if 20 <= len(r) <= cfg.block_size and all(c in vocab.index for c in r)]
    os.makedirs(args.out, exist_ok=True)
    shown = args.text or (known or [val_text])[0]
    save_attention_picture(model, vocab, shown, os.path.join(args.out, "attention.png"), args.layer, args.head)
    torch.save(
        {"model": model.state_dict(), "chars": vocab.chars, "config": vars(cfg)}, os.path.join(args.out, "model.pt")
    )
    header = (
        f"# python -m course.scratch.minigpt {shlex.join(sys.argv[1:] if argv is None else argv)}\n"
        f"# {args.steps} steps in {minutes:.1f} CPU-minutes ({torch.get_num_threads()} thread(s))\n"
        f"# held-out loss {held:.3f} nats/char; character unigram model (add-one): {uni:.3f}\n"
        f"# sample: temperature {args.temperature}, top-k {args.top_k}, after a newline\n"
    )
    with open(os.path.join(args.out, "sample.txt"), "w", encoding="utf-8") as f:
        f.write(f"{header}\n{sample}\n")
    print(f"{header}\n{sample}")
    return {"heldout_loss": held, "unigram_loss": uni, "sample": sample, "out": args.out}


if __name__ == "__main__":
    main()
