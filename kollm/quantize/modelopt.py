"""Post-training quantisation with NVIDIA ModelOpt, exported in the HF format TensorRT-LLM's LLM API loads.

    model = quantize(model, "fp8", calibration_batches)       # fake-quant on CPU: measurable here
    export(model, tokenizer, "out/fp8")                       # safetensors + hf_quant_config.json

On CPU the quantised model runs as fake-quant (weights and activations rounded to the format, maths
in fp32), so perplexity and accuracy show what the format costs; the speed comes on a GPU, where
TensorRT-LLM runs the exported checkpoint with real FP8/INT8/INT4 kernels. NVFP4 needs CUDA even to
calibrate (ModelOpt 0.47), so it is not offered here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Literal

import torch

from kollm.core.errors import KollmError
from kollm.quantize.config import QuantFormat

Format = Literal["int8_sq", "fp8", "int4_awq", "w4a8_awq"]
# kollm name -> ModelOpt config; the names TensorRT-LLM's docs use (int8_sq, fp8, int4_awq, w4a8_awq)
MODELOPT_CONFIGS: dict[QuantFormat, str] = {  # every QuantFormat (tests/test_quantization.py checks)
    "int8_sq": "INT8_SMOOTHQUANT_CFG",
    "fp8": "FP8_DEFAULT_CFG",
    "int4_awq": "INT4_AWQ_CFG",
    "w4a8_awq": "W4A8_AWQ_BETA_CFG",
}
INT4_BLOCK = 128  # ModelOpt packs int4 weights in blocks of 128 input features


def check_format(fmt: str, hidden_size: int, intermediate_size: int) -> None:
    """One line when a format cannot be exported for these layer widths (before any calibration runs)."""
    if fmt not in MODELOPT_CONFIGS:
        raise KollmError(f"quantize format {fmt!r}: choose from {', '.join(MODELOPT_CONFIGS)}")
    if fmt in ("int4_awq", "w4a8_awq"):
        bad = {
            n: w for n, w in (("hidden_size", hidden_size), ("intermediate_size", intermediate_size)) if w % INT4_BLOCK
        }
        if bad:
            widths = ", ".join(f"{n}={w}" for n, w in bad.items())
            what = "not a multiple" if len(bad) == 1 else "not multiples"
            raise KollmError(
                f"{fmt} packs weights in blocks of {INT4_BLOCK} input features; this model has "
                f"{widths} ({what} of {INT4_BLOCK}): use int8_sq or fp8, or a model whose "
                f"hidden_size and intermediate_size are both multiples of {INT4_BLOCK}."
            )


def widths(config) -> tuple[int, int]:
    """(hidden size, MLP width) that check_format checks; the Mambas have no MLP: their output projection's
    input, expand x hidden, stands in for it."""
    inner = getattr(config, "intermediate_size", None) or config.expand * config.hidden_size
    return config.hidden_size, inner


def supported(formats: Iterable[str], hidden_size: int, intermediate_size: int) -> tuple[list[str], dict]:
    """(the formats these widths allow, {format: why not} for the others)."""
    ok, skipped = [], {}
    for fmt in formats:
        try:
            check_format(fmt, hidden_size, intermediate_size)
            ok.append(fmt)
        except KollmError as e:
            skipped[fmt] = str(e)
    return ok, skipped


def quantize(model, fmt: QuantFormat, batches: list[torch.Tensor]):
    """Calibrates `model` in place on `batches` of token ids and returns it (fake-quantised)."""
    import modelopt.torch.quantization as mtq

    check_format(fmt, *widths(model.config))
    config = getattr(mtq, MODELOPT_CONFIGS[fmt])

    @torch.no_grad()
    def forward_loop(m):
        for ids in batches:
            m(input_ids=ids)

    return mtq.quantize(model, config, forward_loop)


def export(model, tokenizer, out_dir: str) -> str:
    """The quantised checkpoint in HF format (what `LLM(model=out_dir)` / trtllm-serve load), with the tokenizer."""
    from modelopt.torch.export import export_hf_checkpoint

    if not getattr(model.config, "architectures", None):  # ModelOpt's exporter reads it (platform-facts)
        model.config.architectures = [type(model).__name__]
    os.makedirs(out_dir, exist_ok=True)
    export_hf_checkpoint(model, export_dir=out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def folder_mb(path: str) -> float:
    """Size of the weights in a model folder (safetensors files), in MB."""
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path) if f.endswith(".safetensors")) / 1e6


def dynamic_int8(model) -> int:
    """torch's dynamic int8 for the decoder body's linear layers (`model` for Llama, `backbone` for the Mambas),
    in place; the LM head stays as it is (Mamba-2's head is called with its weight's dtype, which a dynamic
    quantized layer no longer has). What the CPU Triton model serves with serve.quantization=dynamic_int8;
    returns how many layers it quantized."""
    if hasattr(model.base_model, "_rescale_layers"):
        # RWKV halves some weights in place when it first runs in eval mode; a quantized layer's weight is
        # read-only: rescale now, for inference, so it never tries
        model.eval()
        model.base_model._rescale_layers()
    body = torch.ao.quantization.quantize_dynamic(model.base_model, {torch.nn.Linear}, dtype=torch.qint8)
    setattr(model, model.base_model_prefix, body)
    return sum(type(m).__module__.startswith("torch.ao.nn.quantized") for m in body.modules())
