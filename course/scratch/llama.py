"""Llama 를 처음부터 (a GPT written from scratch): Llama 구조를 한 파일에, 그리고 진짜 체크포인트를 불러오는 로더.

`model.impl=scratch` 로 kollm 의 torch 사전학습 루프가 학습하는 바로 그 모델입니다 (kollm.models.build_model 이
이 파일을 불러옵니다). GPT-2 (course/scratch/gpt2.py) 와 달라진 곳: LayerNorm 대신 RMSNorm, 학습되는 위치 임베딩 대신
회전 위치 임베딩(RoPE), GELU MLP 대신 SwiGLU, 그리고 GQA 어텐션.

읽는 순서 (the chapters of the "from scratch" week):

    tokens -> embeddings      Decoder.embed_tokens
    position                  회전 위치 임베딩 (rotary embeddings, RoPE): 쿼리/키의 채널 쌍을 위치에 비례하는
                              각도만큼 돌려서, q·k 가 두 토큰의 거리에만 달려 있게 합니다
    attention                 Attention: 인과(causal), 멀티헤드, GQA (쿼리 헤드 여럿이 키/값 헤드 하나를 나눠 씀),
                              생성용 KV 캐시 (course/scratch/attention.py 에서 손으로 만든 그것)
    the block                 Block: 사전 정규화(pre-norm, RMSNorm) 어텐션과 SwiGLU MLP, 각각 잔차(residual) 연결
    the GPT                   GPT: 블록들, 마지막 정규화, LM 헤드 (임베딩과 묶임)
    generation                GPT.generate: greedy, 또는 temperature / top-k / top-p 샘플링
    pretrained weights        from_pretrained: 로컬 HF Llama 폴더 아무거나 (config.json + safetensors);
                              kollm 이 사전학습해 내보낸 모델 폴더도 HF Llama 폴더입니다
    training                  `model.impl=scratch`: kollm 의 torch 사전학습 루프가 이 모델을 학습합니다

파라미터 이름은 HF Llama 의 것 그대로입니다 (model.layers.0.self_attn.q_proj.weight, ...): 그래서 HF 체크포인트가
이름을 바꾸지 않고 들어오고, 이 모델이 저장한 것을 HF 가 읽습니다. `tests/test_scratch_llama.py` 가 같은 가중치로
HF 의 로짓 (fp32 에서 최대 절대 차이 < 1e-4) 과 HF 의 greedy 토큰이 나오는지 확인합니다.

이 파일은 torch (와 가중치 파일을 읽는 safetensors) 만 씁니다: kollm 을 import 하지 않습니다 (kollm.models 가 이
파일을 import 하므로, 거꾸로 하면 순환이 생깁니다).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GPTConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    max_seq_len: int
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = True
    head_dim: int = 0  # 0: hidden_size // num_heads

    def __post_init__(self):
        self.head_dim = self.head_dim or self.hidden_size // self.num_heads
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")

    @classmethod
    def from_hf(cls, hf: dict) -> GPTConfig:
        """A HF `config.json` of a Llama-style model; anything this file does not implement is refused."""
        if hf.get("model_type") != "llama":
            raise ValueError(
                f"model_type {hf.get('model_type')!r}: course/scratch/llama.py implements the Llama architecture only"
            )
        rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
        if rope.get("rope_type", rope.get("type", "default")) != "default":
            raise ValueError(f"rope_type {rope.get('rope_type')!r}: only plain RoPE is implemented here")
        for flag in ("attention_bias", "mlp_bias"):
            if hf.get(flag):
                raise ValueError(f"{flag}=true: this GPT's linear layers have no biases")
        if hf.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {hf['hidden_act']!r}: SwiGLU uses silu")
        return cls(
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=hf["num_attention_heads"],
            num_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
            intermediate_size=hf["intermediate_size"],
            max_seq_len=hf.get("max_position_embeddings", 2048),
            rope_theta=rope.get("rope_theta", hf.get("rope_theta", 10000.0)),
            rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
            tie_word_embeddings=hf.get("tie_word_embeddings", False),
            head_dim=hf.get("head_dim") or 0,
        )

    def to_hf(self) -> dict:
        """The same model as a HF LlamaConfig's fields (what `save_pretrained` writes)."""
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_seq_len,
            "rope_parameters": {"rope_type": "default", "rope_theta": self.rope_theta},
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "attention_bias": False,
            "mlp_bias": False,
            "torch_dtype": "float32",
        }


class RMSNorm(nn.Module):
    """RMS 정규화(RMSNorm): x / rms(x) * weight. LayerNorm 과 달리 평균을 빼지 않고 bias 도 없습니다."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        """x / √(mean(x²) + eps) * weight: fp32 로 계산하고 (HF 처럼) 입력의 dtype 으로 돌려줍니다.

        힌트: x32 = x.float() 의 제곱을 마지막 축에서 평균(keepdim=True) 내고 eps 를 더해 torch.rsqrt 를 곱한 뒤,
        .to(x.dtype) 으로 되돌려 self.weight 를 곱합니다.
        """
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


def rope_tables(cfg: GPTConfig, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """위치 x 주파수의 cos 과 sin, [T, head_dim]: 채널 쌍 i 는 한 걸음마다 theta^(-2i/d) 라디안씩 돕니다.

    힌트: inv_freq = 1 / rope_theta^(arange(0, d, 2) / d), 각도 = positions[:, None] * inv_freq[None, :] 입니다.
    HF 의 배치대로 각도를 두 번 이어 붙여(torch.cat([angles, angles], -1)) [T, d] 로 만든 뒤 cos, sin 을 돌려줍니다.
    """
    inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float32) / cfg.head_dim)
    angles = positions.float()[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)  # HF's layout: the pairs are (i, i + d/2), not neighbours
    return angles.cos(), angles.sin()


def rotate(x, cos, sin):
    """x [.., T, d] 의 채널 쌍 (i, i + d/2) 을 2차원 벡터로 보고 각도만큼 돌립니다: x·cos + rotate_half(x)·sin.

    힌트: 반으로 나눠 rotated_half = cat([-x의 뒤 절반, x의 앞 절반], -1) 를 만들고, x * cos + rotated_half * sin
    (cos, sin 은 x 의 dtype 으로) 을 돌려줍니다.
    """
    half = x.shape[-1] // 2
    rotated_half = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated_half * sin.to(x.dtype)


class KVCache:
    """Per layer, the keys and values of every position seen so far: generation computes only the new token."""

    def __init__(self, num_layers: int):
        self.layers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * num_layers

    @property
    def length(self) -> int:
        return 0 if self.layers[0] is None else self.layers[0][0].shape[2]

    def append(self, layer: int, k, v):
        cached = self.layers[layer]
        if cached is not None:
            k = torch.cat([cached[0], k], dim=2)
            v = torch.cat([cached[1], v], dim=2)
        self.layers[layer] = (k, v)
        return k, v


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig, index: int):
        super().__init__()
        self.cfg, self.index = cfg, index
        d = cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.num_heads * d, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.num_kv_heads * d, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.num_kv_heads * d, bias=False)
        self.o_proj = nn.Linear(cfg.num_heads * d, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin, cache: KVCache | None = None, return_weights: bool = False):
        """x [B, T, hidden] -> (o_proj 의 출력 [B, T, hidden], 어텐션 가중치 [B, heads, T, 키 길이] 또는 None).

        힌트: q, k, v 를 투영해 [B, 헤드, T, head_dim] 으로 바꾸고 (view 후 transpose(1, 2)), q 와 k 에 rotate 로
        RoPE 를 겁니다. cache 가 있으면 cache.append(self.index, k, v). 쿼리 t 는 키 0 .. past + t 를 봅니다 (마스크
        ones(T, past + T).tril(diagonal=past)). return_weights 면 k, v 를 repeat_interleave 로 늘려 softmax 를 직접
        계산하고, 아니면 F.scaled_dot_product_attention(..., enable_gqa=True). 헤드를 합쳐 o_proj 를 겁니다.
        """
        B, T, _ = x.shape
        c = self.cfg
        q = self.q_proj(x).view(B, T, c.num_heads, c.head_dim).transpose(1, 2)  # [B, heads, T, d]
        k = self.k_proj(x).view(B, T, c.num_kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, c.num_kv_heads, c.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if cache is not None:
            k, v = cache.append(self.index, k, v)
        past = k.shape[2] - T
        # query t (at position past + t) sees keys 0 .. past + t
        causal = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
        if return_weights:  # the attention map, for looking inside (the same numbers sdpa computes)
            groups = c.num_heads // c.num_kv_heads
            scores = q @ k.repeat_interleave(groups, 1).transpose(-1, -2) / math.sqrt(c.head_dim)
            weights = scores.float().masked_fill(~causal, float("-inf")).softmax(-1).to(q.dtype)
            out = weights @ v.repeat_interleave(groups, 1)
        else:
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=causal, enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, -1)), weights


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x)). gate 가 (silu 를 거쳐) up 의 각 채널을 얼마나 통과시킬지 정합니다."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        """힌트: self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))."""
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig, index: int):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, index)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, cache=None, return_weights=False):
        """사전 정규화 블록: (x + 어텐션(norm(x)), 그다음 + MLP(norm(x))) 와 어텐션 가중치를 돌려줍니다.

        힌트: attended, weights = self.self_attn(self.input_layernorm(x), cos, sin, cache, return_weights) 로 x 에
        더하고, 그 x 에 self.mlp(self.post_attention_layernorm(x)) 를 더해 (x, weights) 를 돌려줍니다.
        """
        attended, weights = self.self_attn(self.input_layernorm(x), cos, sin, cache, return_weights)
        x = x + attended
        return x + self.mlp(self.post_attention_layernorm(x)), weights


@dataclass
class DecoderOutput:  # shaped like HF's outputs, so kollm's torch pretraining loop trains either model
    last_hidden_state: torch.Tensor
    hidden_states: list[torch.Tensor] | None = None  # the residual stream after the embeddings and each block
    attentions: list[torch.Tensor] | None = None


@dataclass
class GPTOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None
    hidden_states: list[torch.Tensor] | None = None
    attentions: list[torch.Tensor] | None = None


class Decoder(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(
        self,
        input_ids,
        cache: KVCache | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> DecoderOutput:
        past = cache.length if cache is not None else 0
        cos, sin = rope_tables(self.cfg, torch.arange(past, past + input_ids.shape[1], device=input_ids.device))
        cos, sin = cos.to(input_ids.device), sin.to(input_ids.device)
        x = self.embed_tokens(input_ids)
        hidden, attentions = [x], []
        for layer in self.layers:
            x, weights = layer(x, cos, sin, cache, output_attentions)
            hidden.append(x)
            attentions.append(weights)
        x = self.norm(x)
        return DecoderOutput(x, hidden if output_hidden_states else None, attentions if output_attentions else None)


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.model = Decoder(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.apply(self._init)
        self.tie_weights()

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)  # HF Llama's initializer_range

    @property
    def base_model(self) -> Decoder:  # the names HF models answer to, so kollm's training loop takes either
        return self.model

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def tie_weights(self):
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(
        self,
        input_ids,
        labels=None,
        cache: KVCache | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> GPTOutput:
        out = self.model(input_ids, cache, output_hidden_states, output_attentions)
        logits = self.lm_head(out.last_hidden_state)
        loss = None
        if labels is not None:  # labels are the inputs: token t predicts token t + 1 (as HF shifts them)
            loss = F.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100
            )
        return GPTOutput(logits, loss, out.hidden_states, out.attentions)

    @torch.no_grad()
    def generate(
        self,
        input_ids,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        eos_token_id: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The prompt plus up to `max_new_tokens` tokens (one row; stops at `eos_token_id`). temperature 0: greedy."""
        cache = KVCache(self.config.num_layers)
        logits = self(input_ids, cache=cache).logits[:, -1]
        new = []
        for _ in range(max_new_tokens):
            token = sample(logits.float(), temperature, top_k, top_p, generator)
            new.append(token)
            if eos_token_id is not None and bool((token == eos_token_id).all()):
                break
            logits = self(token, cache=cache).logits[:, -1]
        return torch.cat([input_ids, *new], dim=1)

    def save_pretrained(self, folder: str) -> None:
        """config.json + model.safetensors that `transformers.AutoModelForCausalLM.from_pretrained` loads."""
        from safetensors.torch import save_file

        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(self.config.to_hf(), f, indent=2)
        weights = {
            k: v.contiguous()
            for k, v in self.state_dict().items()
            if not (self.config.tie_word_embeddings and k == "lm_head.weight")
        }
        save_file(weights, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})


def sample(logits, temperature: float, top_k: int, top_p: float, generator=None):
    """[B, vocab] logits -> [B, 1] tokens: argmax at temperature 0, else softmax(logits / T) cut to the k most
    likely and to the smallest set holding probability top_p."""
    if temperature <= 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits / temperature
    if top_k:
        kth = logits.topk(min(top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, order = logits.sort(descending=True)
        mass_before = ordered.softmax(-1).cumsum(-1) - ordered.softmax(-1)
        ordered = ordered.masked_fill(mass_before >= top_p, float("-inf"))  # the most likely token always stays
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, ordered)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)


def read_safetensors(folder: str) -> dict[str, torch.Tensor]:
    """폴더의 model.safetensors (또는 model.safetensors.index.json 의 조각들). pickle(.bin)은 읽지 않습니다."""
    from safetensors.torch import load_file

    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    elif os.path.isfile(os.path.join(folder, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        raise FileNotFoundError(f"{folder}: no model.safetensors (a .bin checkpoint is not read: it is a pickle)")
    weights = {}
    for name in files:
        weights.update(load_file(os.path.join(folder, name)))
    return weights


def from_pretrained(folder: str, dtype: torch.dtype = torch.float32) -> GPT:
    """Any local HF Llama-style checkpoint folder: config.json and model.safetensors (or shards with
    model.safetensors.index.json). Only safetensors are read: no pickle from a folder a user hands in."""

    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{folder}: no config.json (a HF model folder has config.json + *.safetensors)")
    with open(config_path) as f:
        cfg = GPTConfig.from_hf(json.load(f))
    weights = read_safetensors(folder)
    model = GPT(cfg)
    expected = {k for k in model.state_dict() if not (cfg.tie_word_embeddings and k == "lm_head.weight")}
    missing, unexpected = expected - weights.keys(), weights.keys() - expected - {"lm_head.weight"}
    if missing or unexpected:
        raise ValueError(
            f"{folder}: weights do not match a Llama of this config "
            f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )
    model.load_state_dict({k: weights[k] for k in expected}, strict=False)
    model.tie_weights()
    return model.to(dtype).eval()


def from_model_config(model_cfg, tokenizer) -> GPT:
    """kollm's ModelConfig + tokenizer -> the same shape as `kollm.models.build_model` builds with HF."""
    shared = {f.name for f in fields(GPTConfig)} & set(vars(model_cfg))
    return GPT(GPTConfig(vocab_size=len(tokenizer), **{k: getattr(model_cfg, k) for k in shared}))
