"""Model FLOPs utilisation: achieved training FLOPs over the device's peak.

Achieved = tokens/s x FLOPs per token (`kollm.models.flops_per_token`: 6N for the weights
plus 12 * layers * hidden * seq for attention scores, the PaLM/nanoGPT convention).
Peak: on NVIDIA GPUs the datasheet's dense number for the precision; on a CPU there is
no datasheet figure to trust, so the peak is measured: the best of a few 2048x2048
matmuls in the training dtype, i.e. what this CPU's BLAS/AMX can actually do.
"""

from __future__ import annotations

import functools
import time

import torch

# dense (no sparsity) TFLOP/s, SXM parts
GPU_PEAK_TFLOPS = {
    "H200": {"bf16": 989.4, "fp32": 66.9},
    "H100": {"bf16": 989.4, "fp32": 66.9},
    "A100": {"bf16": 312.0, "fp32": 19.5},
    "L40S": {"bf16": 362.1, "fp32": 91.6},
}


@functools.cache
def measured_matmul_flops(dtype: torch.dtype, n: int = 2048, reps: int = 3) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)  # warm-up
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def peak_flops(precision: str, device: str = "cpu") -> tuple[float, str]:
    """(peak FLOP/s, where the number comes from)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for key, peaks in GPU_PEAK_TFLOPS.items():
            if key in name:
                return peaks[precision] * 1e12, f"{name}: datasheet dense {precision}"
        raise ValueError(f"no peak FLOP/s known for {name}; add it to kollm.pretrain.mfu.GPU_PEAK_TFLOPS")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return measured_matmul_flops(dtype), f"this CPU: best 2048x2048 {precision} matmul, measured"


def peak_memory_mb(device: str = "cpu") -> float:
    """Peak memory of this process: CUDA allocator peak on a GPU, max RSS on a CPU."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
