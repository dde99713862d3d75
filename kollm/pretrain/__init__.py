"""Pretraining (stage `pretrain`): one training frame, two backends, the token data they read.

    train_and_export(...)          run the configured backend, then write the HF folder later stages load
    BACKENDS                       pretrain.backend -> its module (torch_backend, megatron.backend)
    build_indexed_dataset, load_tokens   the corpus tokenised once into a memory-mapped token file
    peak_flops, measured_matmul_flops    what MFU is measured against
    train_on(model, batches, steps, cfg)  this loop's optimiser and schedule on your batches: the losses

Modules: frame (what both backends share: ranks, schedule, checkpoints, stop signals, metrics), torch_backend
(HF model + a PyTorch loop, DDP/FSDP2), megatron/ (megatron-core GPTModel, TP/PP/CP), losses (the fused LM
head + cross-entropy), indexed_data, mfu; config (`pretrain.*`).
"""

from kollm.core.lazy import public_api
from kollm.pretrain.config import PRECISIONS as PRECISIONS
from kollm.pretrain.config import PretrainConfig as PretrainConfig

__getattr__, __dir__ = public_api(
    __name__,
    {
        "frame": "train_and_export BACKENDS Distributed MetricsLog read_history summarize plot_loss",
        "torch_backend": "train_on",
        "indexed_data": "build_indexed_dataset load_tokens document_text",
        "mfu": "peak_flops measured_matmul_flops peak_memory_mb",
        "losses": "linear_cross_entropy",
    },
    eager=("PretrainConfig", "PRECISIONS"),
)
