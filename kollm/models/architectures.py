"""The architecture registry (`model.arch=`): HF causal LMs built from configs, sized to one budget.

The budget is the *non-embedding* parameters of the Llama that `model.*` describes (hidden size,
layers, heads, MLP width): at tiny sizes the embeddings are most of a model, and they are the same
for every architecture, so they would hide the differences. Every other architecture keeps the
hidden size and depth and turns one width knob (below) to the value whose non-embedding count is
nearest the Llama's; `describe` reports both counts, and the active parameters of the MoEs. HF's
configs take the Mamba expansion as an integer, so those match only to within one step of it.

    llama     Transformer: RoPE, GQA, SwiGLU                          (the budget)
    mamba2    Mamba-2 (SSD), HF's chunked torch path                  knob: expand (heads of 32 channels)
    mamba     Mamba-1, mambapy's parallel scan (use_mambapy=True)     knob: expand
    rwkv      RWKV-4 (HF's Rwkv; its CPU path loops over time)        knob: channel-mix width
    moe       Qwen3-MoE: 4 experts, 2 active per token, aux loss      knob: expert width
    mla_moe   DeepSeek-V3: multi-head latent attention + 8 routed
              experts (2 active) and 1 shared, aux-loss-free routing  knob: expert width
    hybrid    Nemotron-H: Mamba-2 and MLP layers, one attention layer knob: expand

Never install mamba-ssm, causal-conv1d or flash-linear-attention beside these on a CPU: when they
import, transformers picks their GPU kernels and the CPU paths fail (platform-facts).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kollm.models import llama
from kollm.models.config import Arch, ModelConfig


@dataclass(frozen=True)
class Architecture:
    """One `model.arch`: its HF config from `model.*` and one width knob, and what the rest of kollm must know."""

    name: str
    model_type: str  # its HF config's model_type (what a saved folder says it is)
    # (model.*, tokenizer or a bare vocabulary size, knob) -> the HF config
    config: Callable[[ModelConfig, Any, int], Any]
    # the knob turned to match the Llama's non-embedding parameters: "" (none: the Llama is the budget),
    # "expand" (Mamba's integer expansion, 1..16) or "width" (channels)
    knob: Literal["", "expand", "width"] = "width"
    experts: tuple[int, int] | None = None  # (active, routed) experts per token (MoEs)
    # its rows may run packed into one sequence (padding-free SFT): pure attention, which transformers masks per
    # row from the restarting position ids. SSM layers and RWKV carry their state from one row into the next, so
    # theirs are padded (tests/test_architectures.py checks both ways)
    packable: bool = False
    # run before a model of it is built or loaded (RWKV: registers kollm's batch-correct class with the auto classes)
    setup: Callable[[], None] | None = None
    # the Llama's own build, parameter count and FLOPs (from the config alone: an 8B model is never built to count it)
    build: Callable[[ModelConfig, Any], Any] | None = None
    parameters: Callable[[ModelConfig, int], int] | None = None
    flops_per_token: Callable[[ModelConfig, int, int], float] | None = None


# every architecture runs every stage: the stages after pretraining need a sequence-classification head
# (fine-tuning's cls head, the reward model, the judges: transformers' own, or kollm/models/seq_classification.py's for
# the SSMs and RWKV) and a cache the serving engine batches (attention KV, SSM state, or both). RWKV runs as
# kollm/models/rwkv.py's batch-correct model: transformers' ignores the attention mask and its one-token step mixes
# the rows of a batch


def _ids(tokenizer) -> dict:
    """The vocabulary and special ids the config takes; a bare vocabulary size is enough for counting."""
    if isinstance(tokenizer, int):
        return {"vocab_size": tokenizer, "bos_token_id": None, "eos_token_id": None, "pad_token_id": None}
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _llama(m: ModelConfig, tokenizer, knob: int):
    import transformers as tf

    h, L, ids = m.hidden_size, m.num_layers, _ids(tokenizer)
    h // m.num_heads
    return (
        llama.llama_config(m, tokenizer)
        if not isinstance(tokenizer, int)
        else tf.LlamaConfig(
            hidden_size=h,
            intermediate_size=m.intermediate_size,
            num_hidden_layers=L,
            num_attention_heads=m.num_heads,
            num_key_value_heads=m.num_kv_heads,
            tie_word_embeddings=True,
            **ids,
        )
    )


def _mamba2(m: ModelConfig, tokenizer, knob: int):
    import transformers as tf

    h, L, ids = m.hidden_size, m.num_layers, _ids(tokenizer)
    h // m.num_heads
    return tf.Mamba2Config(
        hidden_size=h,
        num_hidden_layers=L,
        num_heads=knob * h // 32,
        head_dim=32,
        expand=knob,
        state_size=64,
        n_groups=1,
        chunk_size=64,
        conv_kernel=4,
        tie_word_embeddings=True,
        **ids,
    )


def _mamba(m: ModelConfig, tokenizer, knob: int):
    import transformers as tf

    h, L, ids = m.hidden_size, m.num_layers, _ids(tokenizer)
    h // m.num_heads
    return tf.MambaConfig(
        hidden_size=h,
        num_hidden_layers=L,
        expand=knob,
        state_size=16,
        use_mambapy=True,
        tie_word_embeddings=True,
        **ids,
    )


def _rwkv(m: ModelConfig, tokenizer, knob: int):
    import transformers as tf

    h, L, ids = m.hidden_size, m.num_layers, _ids(tokenizer)
    h // m.num_heads
    ids.pop("pad_token_id")
    return tf.RwkvConfig(
        hidden_size=h,
        num_hidden_layers=L,
        attention_hidden_size=h,
        intermediate_size=knob,
        context_length=m.max_seq_len,
        tie_word_embeddings=True,
        **ids,
    )


def _moe(m: ModelConfig, tokenizer, knob: int):
    import transformers as tf

    h, L, ids = m.hidden_size, m.num_layers, _ids(tokenizer)
    head_dim = h // m.num_heads
    return tf.Qwen3MoeConfig(
        hidden_size=h,
        num_hidden_layers=L,
        num_attention_heads=m.num_heads,
        num_key_value_heads=m.num_kv_heads,
        head_dim=head_dim,
        max_position_embeddings=m.max_seq_len,
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=knob,
        intermediate_size=m.intermediate_size,
        decoder_sparse_step=1,
        norm_topk_prob=True,
        # the torch loop asks for the router logits itself (pretrain.CausalLMLoss): kept
        # in the config, HF's generate() computes the aux loss with a mask of the
        # wrong shape and fails (seen in GRPO's sampling)
        output_router_logits=False,
        router_aux_loss_coef=0.01,
        tie_word_embeddings=True,
        **ids,
    )


def _mla_moe(m: ModelConfig, tokenizer, knob: int):
    import transformers as tf

    h, L, ids = m.hidden_size, m.num_layers, _ids(tokenizer)
    head_dim = h // m.num_heads
    return tf.DeepseekV3Config(
        hidden_size=h,
        num_hidden_layers=L,
        num_attention_heads=m.num_heads,
        num_key_value_heads=m.num_heads,
        kv_lora_rank=h // 4,
        q_lora_rank=h // 2,
        qk_rope_head_dim=head_dim // 2,
        qk_nope_head_dim=head_dim // 2,
        v_head_dim=head_dim,
        n_routed_experts=8,
        n_shared_experts=1,
        num_experts_per_tok=2,
        moe_intermediate_size=knob,
        intermediate_size=m.intermediate_size,
        first_k_dense_replace=1,
        n_group=1,
        topk_group=1,
        num_nextn_predict_layers=0,
        max_position_embeddings=m.max_seq_len,
        tie_word_embeddings=True,
        **ids,
    )


def _hybrid(m: ModelConfig, tokenizer, knob: int):
    import transformers as tf

    h, L, ids = m.hidden_size, m.num_layers, _ids(tokenizer)
    head_dim = h // m.num_heads
    # Nemotron-H's recipe: mostly Mamba-2 + MLP pairs, attention in one of every four pairs
    blocks = [kind for i in range(L) for kind in ("full_attention" if i == L // 2 else "linear_attention", "mlp")]
    return tf.NemotronHConfig(
        hidden_size=h,
        layers_block_type=blocks,
        num_attention_heads=m.num_heads,
        num_key_value_heads=m.num_kv_heads,
        head_dim=head_dim,
        intermediate_size=m.intermediate_size,
        mamba_num_heads=knob * h // 32,
        mamba_head_dim=32,
        expand=knob,
        ssm_state_size=64,
        n_groups=1,
        chunk_size=64,
        max_position_embeddings=m.max_seq_len,
        tie_word_embeddings=True,
        **ids,
    )


def _register_batch_correct_rwkv() -> None:
    from kollm.models import rwkv  # noqa: F401  importing it registers the class


# the registry: every model.arch (its Literal, kollm/models/config.py, names them; a test checks they agree)
ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "llama",
            "llama",
            _llama,
            knob="",
            packable=True,
            build=llama.build,
            parameters=llama.parameter_count,
            flops_per_token=llama.flops_per_token,
        ),
        Architecture("mamba2", "mamba2", _mamba2, knob="expand"),
        Architecture("mamba", "mamba", _mamba, knob="expand"),
        Architecture("rwkv", "rwkv", _rwkv, setup=_register_batch_correct_rwkv),
        Architecture("moe", "qwen3_moe", _moe, experts=(2, 4), packable=True),
        Architecture("mla_moe", "deepseek_v3", _mla_moe, experts=(2, 8), packable=True),
        Architecture("hybrid", "nemotron_h", _hybrid, knob="expand"),
    )
}
ARCHS: tuple[str, ...] = typing.get_args(Arch)
ACTIVE_EXPERTS = {name: a.experts for name, a in ARCHITECTURES.items() if a.experts}  # (active, routed) per token


def _config(arch: str, m: ModelConfig, tokenizer, knob: int):
    return ARCHITECTURES[arch].config(m, tokenizer, knob)


# HF model types whose rows may run packed into one sequence (padding-free SFT; Architecture.packable)
PACKABLE_MODEL_TYPES = tuple(a.model_type for a in ARCHITECTURES.values() if a.packable)


def prepare(arch: str | None = None) -> None:
    """Run the setup `arch` needs before a model of it is built or loaded (None: every architecture's)."""
    for name, a in ARCHITECTURES.items():
        if a.setup is not None and arch in (None, name):
            a.setup()


def counts(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    out = model.get_output_embeddings()
    if out is not None and out.weight is not model.get_input_embeddings().weight:
        embedding += out.weight.numel()
    return {"params": total, "non_embedding_params": total - embedding}


def _meta_counts(arch: str, m: ModelConfig, tokenizer, knob: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return counts(AutoModelForCausalLM.from_config(_config(arch, m, tokenizer, knob)))


def knob_for_budget(arch: str, m: ModelConfig, tokenizer) -> int:
    """The width knob whose non-embedding count is nearest the Llama's (counted on the meta device: no memory)."""
    a = ARCHITECTURES[arch]
    if not a.knob:
        return 0
    budget = _meta_counts("llama", m, tokenizer, 0)["non_embedding_params"]
    # experts run in torch's grouped matmul, whose strides must be multiples of 16 bytes: widths step by 8
    step = 8 if a.experts else 1
    lo, hi = 1, 16 if a.knob == "expand" else 4096 // step  # params grow with the knob: bisect, take the nearer

    def size(k: int) -> int:
        return _meta_counts(arch, m, tokenizer, k * step)["non_embedding_params"]

    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if size(mid) <= budget else (lo, mid)
    return step * min((lo, hi), key=lambda k: abs(size(k) - budget))


def hf_config(m: ModelConfig, tokenizer):
    return _config(m.arch, m, tokenizer, knob_for_budget(m.arch, m, tokenizer))


def build(m: ModelConfig, tokenizer, seed: int = 0):
    import torch
    from transformers import AutoModelForCausalLM

    a = ARCHITECTURES[m.arch]
    prepare(m.arch)
    torch.manual_seed(seed)
    if a.build is not None:
        return a.build(m, tokenizer)
    return AutoModelForCausalLM.from_config(hf_config(m, tokenizer))


def describe(m: ModelConfig, tokenizer) -> dict:
    """params, non_embedding_params (and the Llama budget they were matched to), active params of MoEs."""
    knob = knob_for_budget(m.arch, m, tokenizer)
    c = _meta_counts(m.arch, m, tokenizer, knob)
    row = {
        "arch": m.arch,
        **c,
        "budget_non_embedding_params": _meta_counts("llama", m, tokenizer, 0)["non_embedding_params"],
        "knob": knob,
    }
    if m.arch in ACTIVE_EXPERTS:
        import torch
        from transformers import AutoModelForCausalLM

        active, routed = ACTIVE_EXPERTS[m.arch]
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(_config(m.arch, m, tokenizer, knob))
        expert = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)  # routed experts only
        row["active_non_embedding_params"] = c["non_embedding_params"] - expert + expert * active // routed
    return row
