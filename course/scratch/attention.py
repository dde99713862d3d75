"""어텐션(attention)을 손으로: 트랜스포머의 심장입니다.

    scaled_dot_product_attention   softmax(q·kᵀ / √d) · v, 마스크와 드롭아웃(dropout) 포함
    causal_mask                    인과 마스크(causal mask): 각 토큰은 자기와 그 앞의 토큰만 봅니다
    repeat_kv                      GQA(grouped-query attention): 키/값 헤드 하나를 쿼리 헤드 여럿이 나눠 씁니다
    KVCache                        생성할 때 지난 토큰의 키와 값을 모아 두어, 새 토큰 하나만 계산합니다
    MultiHeadAttention             위 모두를 합친 층: 투영(projection) -> 헤드로 나누기 -> 어텐션 -> 합치기 -> 투영

검사: tests/test_scratch_attention.py 가 `torch.nn.functional.scaled_dot_product_attention` 과
`torch.nn.MultiheadAttention` 의 값과 1e-6 까지 같은지, KV 캐시로 한 토큰씩 디코딩한 값이 전체를 다시 계산한 값과
같은지 확인합니다.

모양(shape) 약속: q, k, v 는 [B, 헤드 수, T, head_dim] 입니다 (B: 배치, T: 토큰 수).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p: float = 0.0, training: bool = False):
    """(출력 [B, H, Tq, d], 어텐션 가중치 [B, H, Tq, Tk]) 를 돌려줍니다.

    mask 는 bool 텐서로, True 인 자리만 볼 수 있습니다 (torch 의 `attn_mask` 와 같은 약속).
    드롭아웃은 softmax 한 가중치에 걸고, training 일 때만 켭니다.

    힌트: 점수 = q @ kᵀ / √d 를 구하고, mask 가 False 인 자리를 -inf 로 채운 뒤 마지막 축으로 softmax 합니다.
    그 가중치에 F.dropout(..., training=training) 을 걸고 v 를 곱합니다.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [B, H, Tq, Tk]: 쿼리와 키가 얼마나 닮았나
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # 볼 수 없는 자리는 softmax 뒤 0 이 됩니다
    weights = scores.softmax(dim=-1)
    weights = F.dropout(weights, p=dropout_p, training=training)
    return weights @ v, weights


def causal_mask(t_q: int, t_k: int, device=None) -> torch.Tensor:
    """[t_q, t_k] bool: 쿼리 i 가 키 j 를 볼 수 있으면 True.

    쿼리는 마지막 t_q 개의 위치입니다 (KV 캐시가 있으면 앞의 t_k - t_q 개는 이미 지난 토큰). 그래서 쿼리 i 의
    위치는 (t_k - t_q) + i 이고, 그 위치까지의 키만 봅니다.

    힌트: torch.ones(t_q, t_k, dtype=torch.bool).tril(diagonal=t_k - t_q) 가 바로 그 모양입니다.
    """
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """GQA: [B, n_kv_heads, T, d] -> [B, n_kv_heads * n_rep, T, d]. 쿼리 헤드 h 는 키/값 헤드 h // n_rep 를 씁니다
    (torch 의 `enable_gqa=True` 와 같은 짝짓기).

    힌트: 헤드 축(dim=1)에서 각 헤드를 n_rep 번 이웃하게 되풀이합니다: x.repeat_interleave(n_rep, dim=1).
    """
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


class KVCache:
    """한 어텐션 층의 KV 캐시: 지금까지 본 모든 위치의 키와 값 [B, n_kv_heads, T_지금까지, d]."""

    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """캐시에 든 토큰 수 (= 다음 토큰의 위치)."""
        return 0 if self.k is None else self.k.shape[2]

    def update(self, k, v):
        """새 토큰들의 키와 값을 뒤에 붙이고, 지금까지의 전체 키와 값을 돌려줍니다.

        힌트: 비어 있으면 k, v 를 그대로 담고, 아니면 토큰 축(dim=2)으로 torch.cat 해서 담은 뒤 (self.k, self.v) 를
        돌려줍니다.
        """
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=2)
            self.v = torch.cat([self.v, v], dim=2)
        return self.k, self.v


class MultiHeadAttention(nn.Module):
    """멀티헤드 어텐션(multi-head attention): d_model 을 n_heads 개의 작은 헤드로 나눠 각자 어텐션합니다.

    n_kv_heads < n_heads 이면 GQA 입니다 (키/값 투영이 작아지고, KV 캐시도 그만큼 작아집니다).
    dropout 은 어텐션 가중치와 출력 투영 뒤에 겁니다 (GPT-2 의 attn_pdrop, resid_pdrop).
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None, dropout: float = 0.0, bias=True):
        super().__init__()
        n_kv_heads = n_kv_heads or n_heads
        if d_model % n_heads or n_heads % n_kv_heads:
            raise ValueError(f"d_model {d_model}, n_heads {n_heads}, n_kv_heads {n_kv_heads}: must divide evenly")
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, d_model // n_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, n_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.out_proj = nn.Linear(n_heads * self.head_dim, d_model, bias=bias)
        self.last_weights: torch.Tensor | None = None  # 마지막 forward 의 어텐션 가중치 (어텐션 지도를 그릴 때)

    def forward(self, x, cache: KVCache | None = None, causal: bool = True):
        """x [B, T, d_model] -> [B, T, d_model]. cache 가 있으면 새 토큰의 키/값을 붙이고 지난 토큰까지 봅니다.

        힌트: q, k, v 를 투영해 [B, 헤드, T, head_dim] 으로 바꾸고(view 후 transpose(1, 2)), cache 가 있으면
        cache.update(k, v), 키/값 헤드를 repeat_kv 로 늘린 뒤 causal_mask(T, 키 길이) 로 scaled_dot_product_attention
        (dropout 은 self.training 일 때만), 헤드를 다시 합쳐 [B, T, d_model] 로 만들고 out_proj 와 드롭아웃을 겁니다.
        """
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(k, v)  # 지난 토큰의 키/값 + 새 토큰의 키/값
        n_rep = self.n_heads // self.n_kv_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        mask = causal_mask(T, k.shape[2], x.device) if causal else None
        out, weights = scaled_dot_product_attention(q, k, v, mask, self.dropout, self.training)
        self.last_weights = weights.detach()
        out = out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # 헤드를 다시 이어 붙입니다
        return F.dropout(self.out_proj(out), p=self.dropout, training=self.training)
