"""Quantisation (stage `quantize`): ModelOpt post-training quantisation exported for TensorRT-LLM, and the CPU
model's dynamic int8.

    quantize, export, supported, MODELOPT_CONFIGS   ModelOpt PTQ formats (int8_sq, fp8, int4_awq)
    dynamic_int8                                    torch dynamic int8 of nn.Linear layers (the served CPU model)

Modules: modelopt; config (`quantize.*`).
"""

from kollm.core.lazy import public_api
from kollm.quantize.config import QuantizeConfig as QuantizeConfig

__getattr__, __dir__ = public_api(
    __name__,
    {
        "modelopt": "quantize export supported check_format widths dynamic_int8 folder_mb MODELOPT_CONFIGS",
    },
    eager=("QuantizeConfig",),
)
