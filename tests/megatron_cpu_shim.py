"""Test-only: let megatron-core run on CPU (gloo) by mapping its hard-coded CUDA uses to CPU.

megatron-core assumes CUDA in a few places (`torch.cuda.current_device()`, tensors made
with `device='cuda'` or `.cuda()`, the CUDA RNG tracker). Real runs are on GPUs; the tests
install this so the same training code runs on the CPU of a CI machine. Never imported by
kollm itself.
"""

from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode


def _is_cuda(device) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if isinstance(device, str):
        return device.startswith("cuda")
    return isinstance(device, int)  # a bare ordinal means a CUDA device


class _CudaToCpu(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = "cpu"
        if func in (torch.Tensor.cuda,):
            return args[0]
        if func is torch.Tensor.type and len(args) == 1 and not kwargs:
            # the mixed-precision optimizer sorts parameters by type string ('torch.cuda.BFloat16Tensor')
            return func(*args).replace("torch.", "torch.cuda.", 1)
        if func is torch.Tensor.to and len(args) > 1 and not isinstance(args[1], bool) and _is_cuda(args[1]):
            args = (args[0], "cpu", *args[2:])
        return func(*args, **kwargs)


class _CpuRngTracker:
    """The CUDA RNG tracker's interface over the CPU generator (dropout in TP regions)."""

    def __init__(self):
        self.states = {}

    def is_initialized(self):
        return True

    def reset(self):
        self.states = {}

    def get_states(self):
        return dict(self.states)

    def set_states(self, states):
        self.states = dict(states)

    def add(self, name, seed):
        self.states[name] = seed

    @contextlib.contextmanager
    def fork(self, name="model-parallel-rng"):
        yield


_installed = False


def install() -> None:
    """Idempotent; call before building megatron-core models or optimizers."""
    global _installed
    if _installed:
        return
    _installed = True
    torch.cuda.current_device = lambda: 0
    torch.cuda.synchronize = lambda *a, **k: None
    torch.cuda.is_available = lambda: False
    torch.cuda.device_count = lambda: 0
    torch.cuda.manual_seed = lambda *a, **k: None
    torch.cuda.manual_seed_all = lambda *a, **k: None
    torch.cuda.get_rng_state = lambda *a, **k: torch.get_rng_state()
    torch.cuda.set_rng_state = lambda *a, **k: None
    torch.cuda.empty_cache = lambda: None
    torch.cuda.max_memory_allocated = lambda *a, **k: 0
    torch.Tensor.cuda = lambda self, *a, **k: self
    from megatron.core import tensor_parallel
    from megatron.core.tensor_parallel import random as tp_random

    tracker = _CpuRngTracker()
    tp_random.get_cuda_rng_tracker = lambda *a, **k: tracker
    tensor_parallel.get_cuda_rng_tracker = tp_random.get_cuda_rng_tracker
    tp_random.model_parallel_cuda_manual_seed = lambda seed, *a, **k: torch.manual_seed(seed)
    tensor_parallel.model_parallel_cuda_manual_seed = tp_random.model_parallel_cuda_manual_seed
    _CudaToCpu().__enter__()  # for the rest of the process
