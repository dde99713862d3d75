"""Test-only entry: the megatron backend through kollm.pretrain.frame.train_and_export on CPU ranks (torchrun, gloo).

    torchrun --nproc-per-node 2 tests/megatron_cpu_run.py <job.json>

job.json: {"model": ModelConfig fields, "pretrain": PretrainConfig fields, "prefixes": {...},
"tokenizer_dir": ..., "out_dir": ..., "hf_dir": ..., "result": <where rank 0 writes the result>}
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import megatron_cpu_shim  # noqa: E402


def bf16_on_cpu() -> None:
    """kollm turns bf16 on for GPUs only; a bf16 job here gets it on CPU too, to run the mixed-precision
    path for real: bf16 parameters, fp32 main parameters in Megatron's optimizer, a bf16 distributed
    checkpoint, and its export through the fp32 one-process model."""
    import torch

    from kollm.pretrain.megatron import gpt_model as mmodel

    real = mmodel.transformer_config

    def with_bf16(model, p, on_gpu):
        config = real(model, p, on_gpu)
        if p.precision == "bf16":
            config.bf16, config.params_dtype, config.pipeline_dtype = True, torch.bfloat16, torch.bfloat16
        return config

    mmodel.transformer_config = with_bf16


def distributed_optimizer_state_on_cpu() -> None:
    """Without Apex/TE, megatron-core's distributed optimizer keeps Adam's step in the torch per-parameter
    state: it reads it to build even a loading state dict (a fresh optimizer has none), and saves it in
    the param groups but does not put it back on load. On GPUs (TE's FusedAdam) the step lives in the
    param groups. Here: zero state before kollm loads a checkpoint, the saved step put back after."""
    import torch

    from kollm.pretrain.megatron import backend as train

    real_load = train.load

    def adam_params(optimizer):
        """(torch Adam state, param group, parameter) under Megatron's (chained) optimizer."""
        for inner in getattr(optimizer, "chained_optimizers", [optimizer]):
            for group in inner.optimizer.param_groups:
                for param in group["params"]:
                    yield inner.optimizer.state, group, param

    def load(path, model, optimizer):
        for state, _, param in adam_params(optimizer):
            if not state[param]:
                state[param].update(
                    exp_avg=torch.zeros_like(param), exp_avg_sq=torch.zeros_like(param), step=torch.tensor(0.0)
                )
        step = real_load(path, model, optimizer)
        for state, group, param in adam_params(optimizer):
            if "step" in group:
                state[param]["step"] = torch.tensor(float(group["step"]))
        return step

    train.load = load


def main(job_path: str) -> None:
    megatron_cpu_shim.install()
    bf16_on_cpu()
    distributed_optimizer_state_on_cpu()
    from transformers import AutoTokenizer

    from kollm.config import ModelConfig, PretrainConfig
    from kollm.pretrain.frame import train_and_export

    job = json.load(open(job_path))
    model_cfg, p = ModelConfig(**job["model"]), PretrainConfig(**job["pretrain"])
    tokenizer = AutoTokenizer.from_pretrained(job["tokenizer_dir"])
    result = train_and_export("megatron", model_cfg, p, job["prefixes"], tokenizer, job["out_dir"], job["hf_dir"])
    if int(os.environ.get("RANK", 0)) == 0:
        with open(job["result"], "w") as f:
            json.dump(result, f)


if __name__ == "__main__":  # dist_checkpointing starts helper processes that re-import this file
    main(sys.argv[1])
