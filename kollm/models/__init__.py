"""Models: every architecture kollm trains, built from `model.*` and our tokenizer (never downloaded).

    build_model(cfg, tokenizer, seed)      a fresh model of `model.arch` (and `model.impl`)
    parameter_count, flops_per_token       counted from the config alone
    llama_config                           the default Llama's HF config
    flush_subnormals                       run models with subnormal floats flushed (x86 CPUs)

Inside: `llama` (the default), `architectures` (the registry of the others, sized to the Llama's
non-embedding parameters), `rwkv` (transformers' RWKV-4 made batch-correct), `seq_classification` (the
classification heads transformers lacks) and `inside` (what the Llama written from scratch shows: attention maps,
logit lens). That Llama (HF's weights and logits; `model.impl=scratch`) is the course's piece course/scratch/llama.py.
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
    "prepare",
]
__getattr__, __dir__ = public_api(__name__, {}, submodules="architectures rwkv inside", eager=tuple(__all__))


def build_model(cfg: ModelConfig, tokenizer, seed: int = 0):
    """A fresh model of `model.arch` (the registry: kollm/models/architectures.py), or with model.impl=scratch the
    Llama written out in course/scratch/llama.py."""
    import torch

    from kollm.models import architectures

    if cfg.impl == "scratch":  # kollm.config.validate: the Llama only
        from course.scratch import llama

        torch.manual_seed(seed)
        return llama.from_model_config(cfg, tokenizer)
    return architectures.build(cfg, tokenizer, seed)


def parameter_count(cfg: ModelConfig, vocab_size: int) -> int:
    """Parameters of `build_model(cfg, tokenizer)` from the config alone, without building it (an 8B model
    would take ~30 GB of host memory per rank): the Llama's by formula (kollm/models/llama.py), the registry's
    other architectures counted on the meta device."""
    from kollm.models import architectures

    own = architectures.ARCHITECTURES[cfg.arch].parameters
    return own(cfg, vocab_size) if own else architectures.describe(cfg, vocab_size)["params"]


def flops_per_token(cfg: ModelConfig, vocab_size: int, seq_len: int) -> float:
    """Training FLOPs per token: the Llama's 6N + attention (kollm/models/llama.py); other architectures 6 x the
    parameters a token passes through (MoEs: the active ones), without the attention/scan term."""
    from kollm.models import architectures

    own = architectures.ARCHITECTURES[cfg.arch].flops_per_token
    if own:
        return own(cfg, vocab_size, seq_len)
    d = architectures.describe(cfg, vocab_size)
    return 6 * (
        d["params"] - d["non_embedding_params"] + d.get("active_non_embedding_params", d["non_embedding_params"])
    )


def prepare(arch: str | None = None) -> None:
    """What an architecture needs before one of its models is built or loaded from a folder (RWKV: kollm's
    batch-correct class registered with the auto classes); None: every architecture's."""
    from kollm.models import architectures

    architectures.prepare(arch)


def flush_subnormals() -> None:
    """Run models with subnormal floats flushed to zero: they are ~40x slower on x86 CPUs (HF generate() of the
    tiny Llama took 216 ms/token with them, 5 ms flushed). Every stage and the benchmarks that generate call it."""
    import torch

    torch.set_flush_denormal(True)
