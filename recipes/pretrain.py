"""Pretraining recipes (Megatron-Bridge style: plain functions returning typed configs).

    from recipes import pretrain
    cfg = pretrain.llama_1b()                       # a PipelineConfig: model + pretrain + run sections
    cfg = pretrain.standalone("corpus.jsonl", "tokenizer/", preset="tiny", overrides=["pretrain.steps=50"])
    task, executor = pretrain.recipe(cfg), pretrain.executor(cfg)
    run.run(task, executor=executor)

Same recipe everywhere; what changes is config: `pretrain.backend` (torch | megatron),
`pretrain.nproc_per_node` (torchrun ranks), `run.executor` (local | slurm | docker) and
`run.nodes`. On the CLI: `kollm run pretrain preset=1b run.executor=slurm ... --dryrun`.
"""

from __future__ import annotations

import nemo_run as run

from kollm import config
from kollm.config import PipelineConfig
from recipes import executors, stages


def tiny() -> PipelineConfig:
    """CPU: the demo's 5M-parameter Llama, torch backend, one process."""
    return config.tiny()


def small() -> PipelineConfig:
    """One GPU: ~125M parameters, megatron backend."""
    return config.small()


def llama_1b() -> PipelineConfig:
    """One node of 8 GPUs: ~1.2B parameters, data parallel with the distributed optimizer."""
    return config.llama_1b()


def llama_8b() -> PipelineConfig:
    """4 nodes x 8 GPUs: ~8B parameters, TP 2 + sequence parallel, distributed optimizer."""
    return config.llama_8b()


def standalone(corpus: str, tokenizer_dir: str, preset: str = "tiny", overrides: list[str] | None = None,
               val_corpus: str = "") -> PipelineConfig:
    """Pretrain on any JSONL corpus with a HF tokenizer folder, outside the pipeline run."""
    cfg = config.build(preset, list(overrides or []))
    cfg.pretrain.corpus, cfg.pretrain.tokenizer_dir, cfg.pretrain.val_corpus = corpus, tokenizer_dir, val_corpus
    config.validate(cfg)
    return cfg


def recipe(cfg: PipelineConfig) -> run.Partial:
    """The pretrain stage as a NeMo Run task (every torchrun rank runs it)."""
    return stages.pretrain(cfg)


def executor(cfg: PipelineConfig):
    return executors.for_config(cfg, ["pretrain"])
