"""Weights between megatron-core GPTModel (full, TP=1 layout) and HF `LlamaForCausalLM`.

Megatron keeps Q, K and V in one matrix, grouped per KV head: for each query group,
its query heads then its key head then its value head. SwiGLU's gate and up
projections are one matrix, gate first. The embedding is padded (see model.py); the HF
model gets exactly the tokenizer's rows. Layer norms live in their own modules with the
local spec and inside linear_qkv/linear_fc1 (`layer_norm_weight`) with Transformer Engine.
"""

from __future__ import annotations

import torch

from kollm.models.config import ModelConfig


def _pick(sd: dict, *names: str) -> torch.Tensor:
    for name in names:
        if name in sd:
            return sd[name]
    raise KeyError(f"none of {names} in the megatron state dict")


def megatron_to_hf(sd: dict, model: ModelConfig, vocab_size: int) -> dict[str, torch.Tensor]:
    heads, groups = model.num_heads, model.num_kv_heads
    head_dim = model.hidden_size // heads
    per_group = heads // groups
    out = {
        "model.embed_tokens.weight": sd["embedding.word_embeddings.weight"][:vocab_size],
        "model.norm.weight": sd["decoder.final_layernorm.weight"],
    }
    for i in range(model.num_layers):
        m, h = f"decoder.layers.{i}.", f"model.layers.{i}."
        qkv = sd[m + "self_attention.linear_qkv.weight"].reshape(groups, (per_group + 2) * head_dim, -1)
        q, k, v = qkv.split([per_group * head_dim, head_dim, head_dim], dim=1)
        out[h + "self_attn.q_proj.weight"] = q.reshape(heads * head_dim, -1)
        out[h + "self_attn.k_proj.weight"] = k.reshape(groups * head_dim, -1)
        out[h + "self_attn.v_proj.weight"] = v.reshape(groups * head_dim, -1)
        out[h + "self_attn.o_proj.weight"] = sd[m + "self_attention.linear_proj.weight"]
        gate, up = sd[m + "mlp.linear_fc1.weight"].chunk(2, dim=0)
        out[h + "mlp.gate_proj.weight"], out[h + "mlp.up_proj.weight"] = gate, up
        out[h + "mlp.down_proj.weight"] = sd[m + "mlp.linear_fc2.weight"]
        out[h + "input_layernorm.weight"] = _pick(
            sd, m + "input_layernorm.weight", m + "self_attention.linear_qkv.layer_norm_weight"
        )
        out[h + "post_attention_layernorm.weight"] = _pick(
            sd, m + "pre_mlp_layernorm.weight", m + "mlp.linear_fc1.layer_norm_weight"
        )
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def hf_to_megatron(hf: dict, model: ModelConfig, padded_vocab: int, te_layout: bool = False) -> dict:
    """The inverse (local-spec names unless te_layout): start megatron training from HF weights."""
    heads, groups = model.num_heads, model.num_kv_heads
    head_dim = model.hidden_size // heads
    per_group = heads // groups
    embed = hf["model.embed_tokens.weight"]
    padded = torch.zeros(padded_vocab, embed.shape[1], dtype=embed.dtype)
    padded[: embed.shape[0]] = embed
    sd = {"embedding.word_embeddings.weight": padded, "decoder.final_layernorm.weight": hf["model.norm.weight"]}
    for i in range(model.num_layers):
        m, h = f"decoder.layers.{i}.", f"model.layers.{i}."
        q = hf[h + "self_attn.q_proj.weight"].reshape(groups, per_group * head_dim, -1)
        k = hf[h + "self_attn.k_proj.weight"].reshape(groups, head_dim, -1)
        v = hf[h + "self_attn.v_proj.weight"].reshape(groups, head_dim, -1)
        sd[m + "self_attention.linear_qkv.weight"] = torch.cat([q, k, v], dim=1).reshape(-1, model.hidden_size)
        sd[m + "self_attention.linear_proj.weight"] = hf[h + "self_attn.o_proj.weight"]
        sd[m + "mlp.linear_fc1.weight"] = torch.cat([hf[h + "mlp.gate_proj.weight"], hf[h + "mlp.up_proj.weight"]])
        sd[m + "mlp.linear_fc2.weight"] = hf[h + "mlp.down_proj.weight"]
        norms = (
            ("self_attention.linear_qkv.layer_norm_weight", "mlp.linear_fc1.layer_norm_weight")
            if te_layout
            else ("input_layernorm.weight", "pre_mlp_layernorm.weight")
        )
        sd[m + norms[0]] = hf[h + "input_layernorm.weight"]
        sd[m + norms[1]] = hf[h + "post_attention_layernorm.weight"]
    return sd
