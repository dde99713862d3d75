"""The pipeline's whole configuration: one section per stage, each defined by the package that owns it
(`kollm.pretrain.config.PretrainConfig`, ...), composed here into `PipelineConfig` with the run's own
settings (`RunConfig`) and the checks that span sections (`validate`).

The recipes in recipes/presets.py are plain functions returning a `PipelineConfig`; users change one with
`section.key=value` overrides (kollm.core.overrides), never by editing code.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Literal

from kollm.align.config import AlignConfig, AlignStep
from kollm.core import overrides
from kollm.core.errors import KollmError
from kollm.core.overrides import apply_overrides, check_choices, check_sizes, to_dict, valid_keys
from kollm.curation.config import CurateConfig, CurateExecutor, FuzzyBackend, OutputFormat
from kollm.data.config import DataConfig
from kollm.evaluate.config import EvaluateConfig
from kollm.export.config import ExportConfig
from kollm.finetune.config import FinetuneBackend, FinetuneConfig, FinetuneHead, FinetuneMethod, FinetuneTask
from kollm.models.config import Arch, ModelConfig, ModelImpl
from kollm.pretrain.config import PRECISIONS, Attention, Backend, Fp8, Precision, PretrainConfig, Strategy
from kollm.quantize.config import QuantFormat, QuantizeConfig
from kollm.serve.config import ServeConfig, TrtllmConfig
from kollm.tokenization.config import TokenizerConfig, TokenizerKind

__all__ = [
    "PipelineConfig",
    "RunConfig",
    "DataConfig",
    "CurateConfig",
    "TokenizerConfig",
    "ModelConfig",
    "PretrainConfig",
    "FinetuneConfig",
    "AlignConfig",
    "EvaluateConfig",
    "ExportConfig",
    "QuantizeConfig",
    "TrtllmConfig",
    "ServeConfig",
    "Executor",
    "CurateExecutor",
    "OutputFormat",
    "FuzzyBackend",
    "Backend",
    "Precision",
    "PRECISIONS",
    "Strategy",
    "Attention",
    "Fp8",
    "FinetuneMethod",
    "FinetuneHead",
    "FinetuneBackend",
    "FinetuneTask",
    "AlignStep",
    "Arch",
    "ModelImpl",
    "TokenizerKind",
    "QuantFormat",
    "apply_overrides",
    "check_choices",
    "check_sizes",
    "from_dict",
    "to_dict",
    "valid_keys",
    "validate",
    "ZERO_ALLOWED",
]

Executor = Literal["local", "slurm", "docker"]


@dataclass
class RunConfig:
    name: str = ""  # run directory name under `root`; defaults to the preset name
    root: str = "runs"
    force: bool = False  # re-run stages even when their manifest says done
    # Where the stages execute: local (this machine: CPU or one GPU), slurm, docker.
    executor: Executor = "local"
    nodes: int = 1
    gpus_per_node: int = 0
    partition: str = ""
    account: str = ""
    time_limit: str = "01:00:00"
    container_image: str = ""  # the training image (containers/Dockerfile.train): every stage but serve
    serve_image: str = ""  # the serve stage's image (containers/Dockerfile.serve); empty: container_image
    nemo_rl_image: str = "nvcr.io/nvidia/nemo-rl:v0.7.0"  # `kollm nemo-rl STEP` (containers/Dockerfile.nemo_rl)
    container_mounts: list[str] = field(default_factory=list)  # SRC:DST, besides run.root (Slurm, Docker)
    profile: str = ""  # the cluster profile these values came from (recipes/cluster.py); set by the CLI
    remote_job_dir: str = ""  # Slurm: job directory on the cluster
    ssh_host: str = ""  # Slurm: login node; empty means submit from this machine
    ssh_user: str = ""
    # Slurm pretraining: how often a job stopped by its time limit (SIGUSR1) or preempted (SIGTERM)
    # requeues itself; it resumes from the checkpoint it saved on the way out
    requeues: int = 3

    @property
    def mounts(self) -> list[str]:
        """What a container gets mounted: the run folder at the same path (every node must see it), then
        run.container_mounts."""
        root = os.path.abspath(self.root)
        return [f"{root}:{root}", *self.container_mounts]


@dataclass
class PipelineConfig:
    preset: str = "tiny"
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    curate: CurateConfig = field(default_factory=CurateConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    trtllm: TrtllmConfig = field(default_factory=TrtllmConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    @property
    def run_dir(self) -> str:
        return os.path.join(self.run.root, self.run.name or self.preset)


def from_dict(data: dict) -> PipelineConfig:
    """The `PipelineConfig` a run recorded (its config.json, a manifest's config)."""
    return overrides.from_dict(PipelineConfig, data)


# The integer fields (and lists of integers) where 0 means something, and what: negatives are refused, 0 is
# accepted. Every other integer field is a size or a count (steps, batch sizes, lengths, widths, layers,
# heads, epochs, examples, ports of a server to reach) and must be >= 1 (`check_sizes`).
ZERO_ALLOWED: dict[str, str] = {
    "run.gpus_per_node": "0 = CPU only",
    "run.requeues": "0 = never requeued",
    "data.max_reviews": "0 = every NSMC review",
    "data.max_comments": "0 = all",
    "curate.workers": "0 = one per CPU",
    "curate.min_chars": "0 = no minimum",
    "curate.min_eojeol": "0 = no minimum",
    "curate.max_urls": "0 = no URL allowed",
    "curate.fuzzy_min_chars": "0 = every key",
    "tokenizer.min_frequency": "0 = no minimum",
    "tokenizer.max_train_docs": "0 = all curated documents",
    "pretrain.micro_batch_size": "0 = the rank's whole share at once",
    "pretrain.loss_chunk": "0 = plain logits and F.cross_entropy",
    "pretrain.tokenize_workers": "0 = one per CPU",
    "pretrain.warmup_steps": "0 = no warm-up",
    "pretrain.seed": "0 is a seed like any other",
    "pretrain.threads": "0 = all cores",
    "finetune.examples_per_class": "0 = all",
    "finetune.min_steps": "0 = no minimum",
    "finetune.seed": "0 is a seed like any other",
    "align.sft_task_examples": "0 = no extra sentiment questions",
    "align.seed": "0 is a seed like any other",
    "evaluate.max_examples": "0 = all labelled rows",
    "evaluate.baseline_examples_per_class": "0 = each task's whole train split",
    "evaluate.zero_shot_examples": "0 = all",
    "evaluate.shots": "0 = zero-shot",
    "serve.min_new_tokens": "0 = no minimum",
    "serve.http_port": "0 = pick a free port",
    "serve.grpc_port": "0 = pick a free port",
    "serve.metrics_port": "0 = pick a free port",
}


# why a size field must be >= 1, where the generic message would not say
SIZE_REASONS: dict[str, str] = {
    "pretrain.checkpoint_every": "the pretrain stage exports its last checkpoint, so it needs them (every N >= 1 steps)",
}


def validate(cfg: PipelineConfig) -> None:
    """The one check of a config, run before anything runs (the CLI, `presets.standalone_pretraining`): every choice
    (`check_choices`: fields and list items typed `Literal[...]`), every size (`check_sizes`), each section's own
    rules (its `check()`), then the rules that span sections."""
    check_choices(cfg)
    check_sizes(cfg, ZERO_ALLOWED, SIZE_REASONS)
    for section in dataclasses.fields(cfg):
        check = getattr(getattr(cfg, section.name), "check", None)
        if check is not None:
            check()
    _check_model_and_parallelism(cfg)


def _check_model_and_parallelism(cfg: PipelineConfig) -> None:
    """pretrain.* against model.* and run.*: the architecture, the implementation, and how the ranks split the model
    and the batch."""
    p, m = cfg.pretrain, cfg.model
    if p.seq_len > m.max_seq_len:
        raise KollmError(f"pretrain.seq_len={p.seq_len} exceeds model.max_seq_len={m.max_seq_len}")
    if m.arch != "llama" and (p.backend != "torch" or m.impl != "hf"):
        raise KollmError(f"model.arch={m.arch} is a HF transformers model: pretrain.backend=torch, model.impl=hf")
    if m.impl == "scratch" and p.backend != "torch":
        raise KollmError("model.impl=scratch (course/scratch/llama.py) trains on pretrain.backend=torch")
    model_parallel = p.tensor_parallel * p.pipeline_parallel * p.context_parallel
    world = p.nproc_per_node * cfg.run.nodes
    if world % model_parallel:
        raise KollmError(
            f"{world} processes (run.nodes x pretrain.nproc_per_node) are not divisible by "
            f"TP x PP x CP = {model_parallel}"
        )
    data_parallel = world // model_parallel
    if p.batch_size % data_parallel:
        raise KollmError(
            f"pretrain.batch_size={p.batch_size} must be divisible by the {data_parallel} data-parallel ranks"
        )
    if p.micro_batch_size and (p.batch_size // data_parallel) % p.micro_batch_size:
        raise KollmError(
            f"pretrain.micro_batch_size={p.micro_batch_size} must divide the "
            f"{p.batch_size // data_parallel} rows each of the {data_parallel} data-parallel ranks gets"
        )
    if m.num_heads % p.tensor_parallel or m.num_kv_heads % p.tensor_parallel:
        raise KollmError(
            f"model.num_heads={m.num_heads} and model.num_kv_heads={m.num_kv_heads} "
            f"must be divisible by pretrain.tensor_parallel={p.tensor_parallel}"
        )
    if m.num_layers % p.pipeline_parallel:
        raise KollmError(
            f"model.num_layers={m.num_layers} must be divisible by pretrain.pipeline_parallel={p.pipeline_parallel}"
        )
