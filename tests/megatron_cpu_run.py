"""Test-only entry: the megatron backend's train-and-export on CPU ranks (torchrun, gloo).

    torchrun --nproc-per-node 2 tests/megatron_cpu_run.py <job.json>

job.json: {"model": ModelConfig fields, "pretrain": PretrainConfig fields, "prefixes": {...},
"tokenizer_dir": ..., "out_dir": ..., "hf_dir": ..., "result": <where rank 0 writes the result>}
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import megatron_cpu_shim  # noqa: E402


def main(job_path: str) -> None:
    megatron_cpu_shim.install()
    from transformers import AutoTokenizer

    from kollm.config import ModelConfig, PretrainConfig
    from kollm.megatron.train import train_and_export
    from kollm.model import build_model, flops_per_token

    job = json.load(open(job_path))
    model_cfg, p = ModelConfig(**job["model"]), PretrainConfig(**job["pretrain"])
    tokenizer = AutoTokenizer.from_pretrained(job["tokenizer_dir"])
    fpt = flops_per_token(build_model(model_cfg, tokenizer), p.seq_len)
    result = train_and_export(model_cfg, p, job["prefixes"], tokenizer, job["out_dir"], fpt, job["hf_dir"])
    if int(os.environ.get("RANK", 0)) == 0:
        with open(job["result"], "w") as f:
            json.dump(result, f)


if __name__ == "__main__":  # dist_checkpointing starts helper processes that re-import this file
    main(sys.argv[1])
