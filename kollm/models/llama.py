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
