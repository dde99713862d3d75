"""A Llama-style causal LM built from a config (no download), sized by the preset."""

from __future__ import annotations

from kollm.config import ModelConfig


def llama_config(cfg: ModelConfig, tokenizer):
    from transformers import LlamaConfig

    # The vocab comes from *our* tokenizer, never from a base model's config.
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_seq_len,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_model(cfg: ModelConfig, tokenizer, seed: int = 0):
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(llama_config(cfg, tokenizer))


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_token(model, seq_len: int) -> float:
    """6N + attention (12 * layers * hidden * seq): the usual training FLOPs per token."""
    c = model.config
    return 6 * count_params(model) + 12 * c.num_hidden_layers * c.hidden_size * seq_len
