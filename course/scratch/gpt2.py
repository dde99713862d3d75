"""GPT-2 를 처음부터: 2019년의 GPT-2 구조를 한 파일에, 그리고 HF GPT-2 폴더의 가중치 불러오기(loading open weights).

읽는 순서:

    LayerNorm        평균을 빼고 표준편차로 나눈 뒤 weight 를 곱하고 bias 를 더합니다
    gelu             GELU 활성화 함수의 tanh 근사 (HF 의 "gelu_new", 원래 GPT-2 가 쓴 식)
    MLP              d -> 4d -> GELU -> d
    Block            사전 정규화(pre-norm): x + attn(ln_1(x)), 그다음 x + mlp(ln_2(x))
    GPT2             토큰 임베딩 + 학습되는 위치 임베딩(learned positions) -> 블록들 -> ln_f -> 출력층
                     (출력층은 토큰 임베딩과 같은 행렬을 씁니다: 묶인 출력층(tied head))
    generate         탐욕(greedy) 생성: KV 캐시로 매번 새 토큰 하나만 계산합니다
    from_hf_folder   로컬 HF GPT-2 폴더(config.json + model.safetensors)를 이 모델로 불러옵니다

어텐션은 course/scratch/attention.py 의 MultiHeadAttention 을 그대로 씁니다.
검사: tests/test_scratch_gpt2.py 가 같은 가중치로 HF `GPT2LMHeadModel` 의 로짓과 1e-4 (fp32) 까지 같은지, 탐욕 생성한
토큰이 HF 의 `generate(do_sample=False)` 와 같은지 확인합니다.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import torch
from torch import nn

from course.scratch import attention, llama


@dataclass
class GPT2Config:
    vocab_size: int = 50257
    n_positions: int = 1024  # 위치 임베딩의 개수 = 한 번에 볼 수 있는 최대 토큰 수
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int = 0  # MLP 의 가운데 크기; 0 이면 4 * n_embd
    dropout: float = 0.1  # 임베딩, 어텐션 가중치, 잔차(residual) 에 거는 드롭아웃 (HF 는 셋을 따로 정합니다)
    layer_norm_epsilon: float = 1e-5

    @classmethod
    def from_hf(cls, hf: dict) -> GPT2Config:
        """HF GPT-2 의 config.json. 이 파일이 구현하지 않은 설정은 이유와 함께 거절합니다."""
        if hf.get("model_type") != "gpt2":
            raise ValueError(f"model_type {hf.get('model_type')!r}: this file implements GPT-2 only")
        if hf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"activation_function {hf['activation_function']!r}: only the tanh GELU is implemented")
        if not hf.get("scale_attn_weights", True) or hf.get("scale_attn_by_inverse_layer_idx"):
            raise ValueError("attention scaled other than by 1/sqrt(head_dim) is not implemented")
        if hf.get("add_cross_attention") or not hf.get("tie_word_embeddings", True):
            raise ValueError("cross-attention or an untied LM head: not GPT-2 as this file writes it")
        return cls(
            vocab_size=hf["vocab_size"],
            n_positions=hf.get("n_positions", 1024),
            n_embd=hf["n_embd"],
            n_layer=hf["n_layer"],
            n_head=hf["n_head"],
            n_inner=hf.get("n_inner") or 0,
            dropout=hf.get("resid_pdrop", 0.1),
            layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-5),
        )


class LayerNorm(nn.Module):
    """층 정규화(layer normalization): 마지막 축마다 평균 0, 분산 1 로 맞춘 뒤 weight 와 bias 로 다시 늘이고 옮깁니다."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x):
        """x [.., dim] -> 같은 모양, 마지막 축마다 정규화.

        힌트: (x - 평균) / √(분산 + eps) * weight + bias. 평균과 분산은 마지막 축에서 keepdim=True 로 구하고,
        분산은 n 으로 나눈 것(unbiased=False)입니다.
        """
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def gelu(x):
    """GELU 의 tanh 근사: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))). HF 의 "gelu_new" 와 같습니다.

    힌트: 식 그대로 씁니다. math.sqrt(2 / math.pi) 와 torch.tanh, x.pow(3) 이 필요합니다.
    """
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


class MLP(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        inner = cfg.n_inner or 4 * cfg.n_embd
        self.c_fc = nn.Linear(cfg.n_embd, inner)
        self.c_proj = nn.Linear(inner, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        """c_fc 로 넓히고, gelu, c_proj 로 다시 좁힌 뒤 드롭아웃.

        힌트: self.dropout(self.c_proj(gelu(self.c_fc(x)))).
        """
        return self.dropout(self.c_proj(gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.ln_1 = LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon)
        self.attn = attention.MultiHeadAttention(cfg.n_embd, cfg.n_head, dropout=cfg.dropout)
        self.ln_2 = LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon)
        self.mlp = MLP(cfg)

    def forward(self, x, cache: attention.KVCache | None = None):
        """사전 정규화 블록: 정규화한 x 로 어텐션과 MLP 를 계산해 잔차(residual)에 더합니다.

        힌트: x = x + self.attn(self.ln_1(x), cache) 다음에 x = x + self.mlp(self.ln_2(x)).
        """
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # 토큰 임베딩
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)  # 위치 임베딩: 위치마다 학습되는 벡터 하나
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)  # HF GPT-2 의 initializer_range
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        self.lm_head.weight = self.wte.weight  # 묶인 출력층: 같은 행렬(파라미터 하나)을 함께 씁니다

    def new_caches(self) -> list[attention.KVCache]:
        """블록마다 빈 KV 캐시 하나."""
        return [attention.KVCache() for _ in self.h]

    def forward(self, idx, caches: list[attention.KVCache] | None = None):
        """토큰 id [B, T] -> 로짓(logits) [B, T, vocab]. caches 가 있으면 idx 는 그 뒤에 이어지는 토큰들입니다.

        힌트: 위치는 캐시에 든 토큰 수(caches[0].length)부터 T 개입니다 (torch.arange). x = drop(wte(idx) + wpe(위치)),
        블록마다 x = block(x, 그 블록의 캐시), 마지막에 lm_head(ln_f(x)).
        """
        past = caches[0].length if caches else 0
        positions = torch.arange(past, past + idx.shape[1], device=idx.device)
        if past + idx.shape[1] > self.config.n_positions:
            raise ValueError(f"{past + idx.shape[1]} tokens: this model has {self.config.n_positions} positions")
        x = self.drop(self.wte(idx) + self.wpe(positions))
        for i, block in enumerate(self.h):
            x = block(x, caches[i] if caches else None)
        return self.lm_head(self.ln_f(x))

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int, eos_token_id: int | None = None):
        """프롬프트 [B, T] 뒤에 가장 그럴듯한 토큰을 하나씩 max_new_tokens 개 붙입니다 (탐욕 생성).

        힌트: caches = self.new_caches() 를 만들고 프롬프트 전체를 한 번 넣습니다. 그다음 매번 마지막 위치 로짓의
        argmax(-1, keepdim=True) 를 붙이고, 그 토큰 하나만 캐시와 함께 다시 넣습니다. eos_token_id 가 나오면 멈춥니다.
        """
        caches = self.new_caches()
        logits = self(idx, caches)[:, -1]
        for _ in range(max_new_tokens):
            token = logits.argmax(-1, keepdim=True)  # [B, 1]
            idx = torch.cat([idx, token], dim=1)
            if eos_token_id is not None and bool((token == eos_token_id).all()):
                break
            logits = self(token, caches)[:, -1]
        return idx


def from_hf_state_dict(weights: dict[str, torch.Tensor], cfg: GPT2Config) -> dict[str, torch.Tensor]:
    """HF GPT-2 의 가중치 이름과 모양 -> 이 파일의 것.

    HF GPT-2 는 nn.Linear 대신 Conv1D 를 씁니다: weight 가 [입력, 출력] 으로, nn.Linear 의 [출력, 입력] 과 전치 관계입니다.
    또 c_attn 하나가 q, k, v 세 투영을 이어 붙인 [d, 3d] 입니다.

    힌트: 이름 앞의 "transformer." 를 떼고, Conv1D 의 weight (c_attn, attn.c_proj, c_fc, mlp.c_proj) 는 .t() 로
    전치합니다. c_attn 의 weight (전치 뒤 [3d, d]) 와 bias ([3d]) 는 dim=0 에서 chunk(3) 해 q_proj, k_proj, v_proj
    로 나누고, attn.c_proj 는 attn.out_proj 가 됩니다. lm_head.weight 는 wte 와 묶여 있으니 건너뜁니다.
    """
    out = {}
    for name, w in weights.items():
        name = name.removeprefix("transformer.")
        if name == "lm_head.weight" or name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # 묶인 출력층, 그리고 옛 버전이 저장하던 마스크 버퍼
        if name.endswith("attn.c_attn.weight") or name.endswith("attn.c_attn.bias"):
            kind = name.rsplit(".", 1)[1]
            parts = (w.t() if kind == "weight" else w).chunk(3, dim=0)
            for proj, part in zip(("q_proj", "k_proj", "v_proj"), parts, strict=True):
                out[name.replace("c_attn", proj)] = part.contiguous()
            continue
        if name.endswith((".c_proj.weight", ".c_fc.weight")):
            w = w.t().contiguous()  # Conv1D [입력, 출력] -> nn.Linear [출력, 입력]
        out[name.replace("attn.c_proj", "attn.out_proj")] = w
    return out


def from_hf_folder(path: str, dtype: torch.dtype = torch.float32) -> GPT2:
    """로컬 HF GPT-2 폴더 (config.json + safetensors) -> 같은 로짓을 내는 GPT2, eval 모드."""
    with open(os.path.join(path, "config.json")) as f:
        cfg = GPT2Config.from_hf(json.load(f))
    model = GPT2(cfg)
    state = from_hf_state_dict(llama.read_safetensors(path), cfg)
    expected = set(model.state_dict()) - {"lm_head.weight"}
    missing, unexpected = expected - state.keys(), state.keys() - expected
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not match a GPT-2 of this config "
            f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )
    model.load_state_dict(state, strict=False)  # lm_head.weight 는 wte.weight 와 같은 파라미터라 함께 채워집니다
    return model.to(dtype).eval()
