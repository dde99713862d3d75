"""Models: every architecture kollm trains, built from `model.*` and our tokenizer (never downloaded).

    build_model(cfg, tokenizer, seed)      a fresh model of `model.arch` (and `model.impl`)
    parameter_count, flops_per_token       counted from the config alone
    llama_config                           the default Llama's HF config
    flush_subnormals                       run models with subnormal floats flushed (x86 CPUs)

Inside: `llama` (the default), `architectures` (the registry of the others, sized to the Llama's
non-embedding parameters), `rwkv` (transformers' RWKV-4 made batch-correct), `seq_classification` (the
classification heads transformers lacks), `gpt` (the Llama written from scratch, HF's weights and logits)
and `inside` (what it shows: attention maps, logit lens).
"""

from __future__ import annotations

from kollm.core.lazy import public_api
from kollm.models.config import Arch, ModelConfig, ModelImpl
from kollm.models.llama import llama_config

__all__ = [
    "ModelConfig",
    "Arch",
    "ModelImpl",
    "build_model",
    "parameter_count",
    "flops_per_token",
    "llama_config",
    "flush_subnormals",
]
# `from kollm.models import rwkv` registers the batch-correct RWKV with transformers' auto classes
__getattr__, __dir__ = public_api(__name__, {}, submodules="rwkv", eager=tuple(__all__))


def build_model(cfg: ModelConfig, tokenizer, seed: int = 0):
    import torch
    from transformers import LlamaForCausalLM

    if cfg.arch != "llama":
        from kollm.models import architectures

        return architectures.build(cfg, tokenizer, seed)
    torch.manual_seed(seed)
    if cfg.impl == "scratch":
        from kollm.models import gpt

        return gpt.from_model_config(cfg, tokenizer)
    return LlamaForCausalLM(llama_config(cfg, tokenizer))


def parameter_count(cfg: ModelConfig, vocab_size: int) -> int:
    """Parameters of `build_model(cfg, tokenizer)` from the config alone, without building it (an 8B model
    would take ~30 GB of host memory per rank): tied embedding, per layer GQA attention (q and o of
    hidden x hidden, k and v of hidden x kv_heads*head_dim), SwiGLU (3 x hidden x intermediate), two
    RMSNorms; the final norm. The registry's other architectures (model.arch) are counted on the meta device."""
    if cfg.arch != "llama":
        from kollm.models import architectures

        return architectures.describe(cfg, vocab_size)["params"]
    h, head_dim = cfg.hidden_size, cfg.hidden_size // cfg.num_heads
    attention = 2 * h * h + 2 * h * cfg.num_kv_heads * head_dim
    layer = attention + 3 * h * cfg.intermediate_size + 2 * h
    return vocab_size * h + cfg.num_layers * layer + h


def flops_per_token(cfg: ModelConfig, vocab_size: int, seq_len: int) -> float:
    """6N + attention (12 * layers * hidden * seq): the usual training FLOPs per token. Other architectures:
    6 x the parameters a token passes through (MoEs: the active ones), without the attention/scan term."""
    if cfg.arch != "llama":
        from kollm.models import architectures

        d = architectures.describe(cfg, vocab_size)
        return 6 * (
            d["params"] - d["non_embedding_params"] + d.get("active_non_embedding_params", d["non_embedding_params"])
        )
    return 6 * parameter_count(cfg, vocab_size) + 12 * cfg.num_layers * cfg.hidden_size * seq_len


def flush_subnormals() -> None:
    """Run models with subnormal floats flushed to zero: they are ~40x slower on x86 CPUs (HF generate() of the
    tiny Llama took 216 ms/token with them, 5 ms flushed). Every stage and the benchmarks that generate call it."""
    import torch

    torch.set_flush_denormal(True)
