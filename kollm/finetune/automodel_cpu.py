"""Run a NeMo AutoModel recipe on CPU: `torchrun -m kollm.finetune.automodel_cpu recipe.yaml [--a.b=v]`.

AutoModel 0.7 is written for GPUs: its train loop resets and reads CUDA memory statistics and puts
batches on `cuda`. On a machine without a GPU this maps those uses to the CPU (gloo for the process
group comes from the recipe's `dist_env.backend`), then hands over to AutoModel's own CLI. On GPUs
the recipe runs under `automodel` itself and this module is not used. Runs in .venv-automodel.
"""

from __future__ import annotations

import sys

import torch
from torch.overrides import TorchFunctionMode


def _cuda(device) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if isinstance(device, str):
        return device.startswith("cuda")
    return isinstance(device, int) and not isinstance(device, bool)  # a bare ordinal names a CUDA device


class CudaToCpu(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if _cuda(kwargs.get("device")):
            kwargs["device"] = "cpu"
        if func is torch.Tensor.cuda:
            return args[0]
        if func in (torch.Tensor.to, torch.Tensor.pin_memory) and len(args) > 1 and _cuda(args[1]):
            args = (args[0], "cpu", *args[2:])
        if func is torch._C._nn._parse_to and args and _cuda(args[0]):  # Module.to(device)
            args = ("cpu", *args[1:])
        return func(*args, **kwargs)


def install() -> None:
    for name in ("reset_peak_memory_stats", "synchronize", "empty_cache", "set_device", "reset_max_memory_allocated"):
        setattr(torch.cuda, name, lambda *a, **k: None)
    for name in ("max_memory_allocated", "max_memory_reserved", "memory_allocated", "memory_reserved"):
        setattr(torch.cuda, name, lambda *a, **k: 0)
    torch.cuda.current_device = lambda: 0
    CudaToCpu().__enter__()


def main() -> int:
    install()
    from nemo_automodel.cli.app import main as automodel_main

    sys.argv = ["automodel", *sys.argv[1:]]
    return automodel_main()


if __name__ == "__main__":
    sys.exit(main())
