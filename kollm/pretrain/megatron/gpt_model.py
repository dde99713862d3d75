"""megatron-core GPTModel with the same Llama architecture as `kollm.models` (the torch backend).

RMSNorm, SwiGLU MLP without biases, RoPE (non-interleaved, base 10000), grouped-query
attention, tied embeddings: every choice matches `LlamaConfig` so that the weights
convert one-to-one (`kollm.pretrain.megatron.convert`).
"""

from __future__ import annotations

import math

from kollm.models.config import ModelConfig
from kollm.pretrain.config import PretrainConfig

VOCAB_DIVISIBLE_BY = 128  # Megatron's make_vocab_size_divisible_by default


def padded_vocab_size(vocab_size: int, tensor_parallel: int) -> int:
    """Megatron pads the embedding so every TP rank holds an equal slice; the tokenizer's size is the input."""
    multiple = VOCAB_DIVISIBLE_BY * tensor_parallel
    return int(math.ceil(vocab_size / multiple) * multiple)


def has_transformer_engine() -> bool:
    try:
        import transformer_engine  # noqa: F401
    except ImportError:
        return False
    return True


def transformer_config(model: ModelConfig, p: PretrainConfig, on_gpu: bool):
    import torch
    import torch.nn.functional as F
    from megatron.core.transformer import TransformerConfig

    bf16 = p.precision == "bf16" and on_gpu
    fused = on_gpu  # the fused kernels need CUDA
    return TransformerConfig(
        num_layers=model.num_layers,
        hidden_size=model.hidden_size,
        num_attention_heads=model.num_heads,
        num_query_groups=model.num_kv_heads,
        ffn_hidden_size=model.intermediate_size,
        kv_channels=None,
        normalization="RMSNorm",
        layernorm_epsilon=1e-5,
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=False,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        init_method_std=0.02,
        tensor_model_parallel_size=p.tensor_parallel,
        pipeline_model_parallel_size=p.pipeline_parallel,
        context_parallel_size=p.context_parallel,
        sequence_parallel=p.sequence_parallel and p.tensor_parallel > 1,
        bf16=bf16,
        params_dtype=torch.bfloat16 if bf16 else torch.float32,
        pipeline_dtype=torch.bfloat16 if bf16 else torch.float32,
        fp8=p.fp8 or None,
        fp8_recipe="delayed" if p.fp8 else None,
        use_cpu_initialization=not on_gpu,
        perform_initialization=True,
        bias_activation_fusion=fused,
        masked_softmax_fusion=fused,
        persist_layer_norm=fused,
        bias_dropout_fusion=fused,
        apply_rope_fusion=fused and has_transformer_engine(),  # TE's RoPE kernel
        gradient_accumulation_fusion=False,
    )


def layer_spec(use_te: bool):
    from megatron.core.models.gpt.gpt_layer_specs import (
        get_gpt_layer_local_spec,
        get_gpt_layer_with_transformer_engine_spec,
    )

    if use_te:
        return get_gpt_layer_with_transformer_engine_spec()
    return get_gpt_layer_local_spec(normalization="RMSNorm")


def build(
    model: ModelConfig,
    p: PretrainConfig,
    vocab_size: int,
    on_gpu: bool,
    pre_process: bool = True,
    post_process: bool = True,
):
    """The GPTModel for this rank (its pipeline stage and tensor-parallel slice)."""
    from megatron.core.models.gpt import GPTModel

    config = transformer_config(model, p, on_gpu)
    return GPTModel(
        config=config,
        transformer_layer_spec=layer_spec(on_gpu and has_transformer_engine()),
        vocab_size=padded_vocab_size(vocab_size, p.tensor_parallel),
        max_sequence_length=model.max_seq_len,
        pre_process=pre_process,
        post_process=post_process,
        share_embeddings_and_output_weights=True,
        position_embedding_type="rope",
        rotary_percent=1.0,
        rotary_base=10000,
        parallel_output=True,
    )
