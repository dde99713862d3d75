"""A megatron distributed checkpoint -> the HF Llama the rest of the pipeline loads.

Runs in one process: the checkpoint (any TP/PP it was saved with) is loaded into a TP=1
GPTModel — `dist_checkpointing` reshards on load — converted (`convert.megatron_to_hf`)
and checked: both models' logits must agree before the model is handed on (kollm.pretrain.frame
writes the folder, for both backends).
"""

from __future__ import annotations

import torch

from kollm.models.config import ModelConfig
from kollm.pretrain.config import PretrainConfig
from kollm.pretrain.megatron import convert
from kollm.pretrain.megatron import gpt_model as mmodel


def load_full(checkpoint: str, model_cfg: ModelConfig, vocab_size: int, on_gpu: bool):
    """The checkpoint's weights in a one-process (TP=PP=1) GPTModel."""
    from megatron.core import dist_checkpointing, parallel_state, tensor_parallel

    if not torch.distributed.is_initialized():
        # an in-memory store: under torchrun the default rendezvous would join the job's store
        torch.distributed.init_process_group(
            "nccl" if on_gpu else "gloo", store=torch.distributed.HashStore(), rank=0, world_size=1
        )
    if not parallel_state.model_parallel_is_initialized():
        parallel_state.initialize_model_parallel(1, 1)
        tensor_parallel.model_parallel_cuda_manual_seed(0)
    one = PretrainConfig(precision="fp32")
    gpt = mmodel.build(model_cfg, one, vocab_size, on_gpu)
    if on_gpu:
        gpt.cuda()
    state = dist_checkpointing.load({"model": gpt.sharded_state_dict()}, checkpoint)
    gpt.load_state_dict(state["model"])
    return gpt.eval()


@torch.no_grad()
def export_hf(checkpoint: str, model_cfg: ModelConfig, tokenizer, check_ids=None):
    """(the HF model, {"max_abs_logit_diff": the largest logit difference seen})."""
    from kollm.models import build_model

    on_gpu = torch.cuda.is_available()
    vocab = len(tokenizer)
    gpt = load_full(checkpoint, model_cfg, vocab, on_gpu)
    full = {
        k: v.float().cpu()
        for k, v in gpt.state_dict().items()
        if isinstance(v, torch.Tensor) and not k.endswith("_extra_state")
    }
    hf = build_model(model_cfg, tokenizer)
    missing, unexpected = hf.load_state_dict(convert.megatron_to_hf(full, model_cfg, vocab), strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise RuntimeError(f"conversion mismatch: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    hf.eval()
    if check_ids is None:
        check_ids = torch.arange(min(vocab, 32)).unsqueeze(0)
    positions = torch.arange(check_ids.shape[1]).unsqueeze(0).expand_as(check_ids)
    device = next(gpt.parameters()).device
    ours = gpt(check_ids.to(device), positions.to(device), attention_mask=None).float().cpu()[..., :vocab]
    theirs = hf(input_ids=check_ids).logits
    diff = float((ours - theirs).abs().max())
    if diff > 1e-3 * max(1.0, float(theirs.abs().max())):
        raise RuntimeError(f"converted HF model disagrees with the megatron model: max |logit diff| {diff:.2e}")
    return hf, {"max_abs_logit_diff": diff}
