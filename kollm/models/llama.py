"""The Llama kollm trains by default (`model.arch=llama`): its HF config from `model.*` and our tokenizer."""

from __future__ import annotations

from kollm.models.config import ModelConfig


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


def build(cfg: ModelConfig, tokenizer):
    """A fresh Llama of `model.*` with our tokenizer's vocabulary (seeded by the caller)."""
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(llama_config(cfg, tokenizer))


def parameter_count(cfg: ModelConfig, vocab_size: int) -> int:
    """Tied embedding, per layer GQA attention (q and o of hidden x hidden, k and v of hidden x kv_heads*head_dim),
    SwiGLU (3 x hidden x intermediate), two RMSNorms; the final norm."""
    h, head_dim = cfg.hidden_size, cfg.hidden_size // cfg.num_heads
    attention = 2 * h * h + 2 * h * cfg.num_kv_heads * head_dim
    layer = attention + 3 * h * cfg.intermediate_size + 2 * h
    return vocab_size * h + cfg.num_layers * layer + h


def flops_per_token(cfg: ModelConfig, vocab_size: int, seq_len: int) -> float:
    """6N + attention (12 * layers * hidden * seq): the usual training FLOPs per token."""
    return 6 * parameter_count(cfg, vocab_size) + 12 * cfg.num_layers * cfg.hidden_size * seq_len
