"""Typed pipeline configuration, presets and dotted overrides (Megatron-Bridge style).

A recipe is a plain function returning a `PipelineConfig`; users change it with
`section.key=value` overrides, never by editing code.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field

from kollm.errors import KollmError


@dataclass
class RunConfig:
    name: str = ""  # run directory name under `root`; defaults to the preset name
    root: str = "runs"
    force: bool = False  # re-run stages even when their manifest says done
    # Where the stages execute: local (this machine: CPU or one GPU), slurm, docker.
    executor: str = "local"
    nodes: int = 1
    gpus_per_node: int = 0
    partition: str = ""
    account: str = ""
    time_limit: str = "01:00:00"
    container_image: str = ""  # e.g. nvcr.io/nvidia/nemo:25.11 built from containers/
    remote_job_dir: str = ""  # Slurm: job directory on the cluster
    ssh_host: str = ""  # Slurm: login node; empty means submit from this machine
    ssh_user: str = ""


@dataclass
class DataConfig:
    data_dir: str = ""  # empty: $KOLLM_DATA_DIR, ../shared/data, then the download cache
    max_reviews: int = 0  # 0 = every NSMC review
    val_fraction: float = 0.05  # of movies, by movie_id
    test_fraction: float = 0.05
    max_comments: int = 0  # unlabeled web comments for pretraining; 0 = all


@dataclass
class CurateConfig:
    """Korean curation (curator_pipelines/): thresholds chosen from the corpus histograms."""
    executor: str = "inprocess"  # inprocess | ray (Curator's RayDataExecutor on this machine)
    workers: int = 0  # inprocess: worker processes over shards; 0 = one per CPU, 1 = this process only
    ray_cpus_per_stage: float = 0.5  # fractional: whole-CPU stages deadlock Ray on 2 cores
    shard_docs: int = 50_000  # lines per shard: the unit of parallelism and of resume
    output_format: str = "jsonl"  # jsonl | parquet
    min_chars: int = 4  # non-space characters
    max_chars: int = 2000
    min_eojeol: int = 1
    max_eojeol: int = 500
    min_hangul_ratio: float = 0.4  # Hangul share of non-space characters
    max_jamo_ratio: float = 0.5  # bare ㅋ/ㅠ/ㅇ share of Hangul
    max_char_run_ratio: float = 0.5  # share of characters inside runs of >= 4 identical ones
    max_repeated_ngram_ratio: float = 0.5  # duplicate character 3-grams
    max_urls: int = 0
    min_langid_score: float = 0.5  # fastText lid.176 confidence that the text is Korean
    max_toxicity: float = 0.9  # classifier P(toxic); dev precision 1.0 at 0.9
    fuzzy_dedup: bool = True
    fuzzy_backend: str = "auto"  # cpu (kollm MinHash) | gpu (Curator's cuDF workflow) | auto: gpu if cuDF imports
    minhash_ngram: int = 3  # character shingles of the key without spaces/punctuation
    minhash_bands: int = 20
    minhash_rows: int = 4
    jaccard_threshold: float = 0.6
    fuzzy_min_chars: int = 10


@dataclass
class TokenizerConfig:
    vocab_size: int = 8000
    min_frequency: int = 2
    max_train_docs: int = 0  # 0 = all curated documents


@dataclass
class ModelConfig:
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 704
    max_seq_len: int = 256


@dataclass
class PretrainConfig:
    # torch: the HF Llama + a PyTorch loop (one process, or DDP/FSDP2 under torchrun);
    # megatron: megatron-core GPTModel of the same architecture, TP/PP/CP/DP (GPUs)
    backend: str = "torch"
    precision: str = "bf16"  # bf16 autocast (fp32 master weights) or fp32; CPUs with AMX run bf16 fast
    nproc_per_node: int = 1  # processes per node under torchrun: GPUs, or gloo ranks on a CPU
    strategy: str = "ddp"  # torch backend with several processes: ddp | fsdp (FSDP2 fully_shard)
    tensor_parallel: int = 1  # megatron backend
    pipeline_parallel: int = 1
    context_parallel: int = 1
    sequence_parallel: bool = False
    distributed_optimizer: bool = False  # megatron: shard optimizer state over data-parallel ranks
    fp8: str = ""  # megatron + Transformer Engine on Hopper: "" (off) | hybrid | e4m3
    # rows per forward/backward pass on each rank, gradients accumulated up to the rank's share of
    # batch_size (megatron: its pipeline schedule's micro-batches); 0 = the rank's whole share at once
    micro_batch_size: int = 0
    # torch backend: LM head + cross-entropy fused, this many tokens at a time (kollm.losses),
    # so the [tokens, vocab] logits never exist; 0 = plain logits and F.cross_entropy
    loss_chunk: int = 256
    # torch backend attention kernel: auto = eager on CPUs (tiny preset, profiled: attention
    # forward+backward 16 ms a step, SDPA's CPU flash kernel 93 ms), sdpa on GPUs; or eager | sdpa
    attention: str = "auto"
    # Standalone use (recipes/pretrain.py): a JSONL corpus and a HF tokenizer folder instead of
    # the run's curate and tokenizer stages. Empty: take them from the pipeline run.
    corpus: str = ""
    val_corpus: str = ""
    tokenizer_dir: str = ""
    tokenize_workers: int = 0  # 0 = one per CPU
    # Append each train-split review's rating to its text in the token stream ("… 평점: 9"):
    # the LM then learns review -> rating from every train review, not only the fine-tuning sample.
    rating_in_text: bool = True
    steps: int = 1000
    batch_size: int = 32
    seq_len: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    checkpoint_every: int = 200  # steps (and always the last); 0 = none: throughput benchmarks calling the loop
    log_every: int = 10
    seed: int = 1234
    threads: int = 0  # 0 = all cores


@dataclass
class FinetuneConfig:
    examples_per_class: int = 4000
    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-3
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    max_len: int = 96
    seed: int = 1234


@dataclass
class AlignConfig:
    sft_examples: int = 800
    sft_epochs: int = 1
    dpo_pairs: int = 400
    dpo_epochs: int = 1
    dpo_beta: float = 0.1
    batch_size: int = 8
    sft_lr: float = 5e-4
    dpo_lr: float = 1e-4
    max_len: int = 128
    eval_pairs: int = 100
    seed: int = 1234


@dataclass
class EvaluateConfig:
    nsmc_path: str = ""  # any JSONL with the NSMC schema; empty = the run's test split
    max_examples: int = 2000  # balanced sample of the test set; 0 = all labelled rows
    perplexity_docs: int = 1000
    max_new_tokens: int = 48
    prompts: list[str] = field(
        default_factory=lambda: [
            "이 영화에 대한 긍정적인 리뷰를 써 주세요.",
            "이 영화에 대한 부정적인 리뷰를 써 주세요.",
            "연예 기사에 댓글을 달아 주세요.",
        ]
    )


@dataclass
class ServeConfig:
    prompt: str = "이 영화에 대한 긍정적인 리뷰를 써 주세요."
    max_new_tokens: int = 32
    http_port: int = 0  # 0 = pick a free port
    grpc_port: int = 0
    metrics_port: int = 0
    startup_timeout_s: float = 120.0
    keep_running: bool = False  # leave the server up after the smoke test (demo use)
    # Interpreter of the serving environment (tritonserver + tritonclient); empty = the repo's
    # .venv-serve if present, else the current interpreter. In NGC Triton containers: python3.
    python: str = ""


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
    serve: ServeConfig = field(default_factory=ServeConfig)

    @property
    def run_dir(self) -> str:
        import os

        return os.path.join(self.run.root, self.run.name or self.preset)


def tiny() -> PipelineConfig:
    """The demo: every NSMC review, a 5M-parameter Llama, whole pipeline in < 15 minutes on 2 cores."""
    cfg = PipelineConfig(preset="tiny")
    cfg.pretrain.steps = 800  # 3.3M tokens: about 4 of the 10 minutes on 2 cores (benchmarks/results/pipeline_tiny.json)
    cfg.finetune.examples_per_class = 3500
    cfg.evaluate.perplexity_docs = 500
    return cfg


def ci() -> PipelineConfig:
    """The end-to-end test preset: a slice of the data and a toy model, ~2 minutes on 2 cores."""
    cfg = PipelineConfig(preset="ci")
    cfg.data.max_reviews = 30000
    cfg.data.max_comments = 3000
    cfg.tokenizer.vocab_size = 2000
    cfg.model = ModelConfig(hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                            intermediate_size=352, max_seq_len=128)
    cfg.pretrain.steps = 300
    cfg.pretrain.batch_size = 16
    cfg.pretrain.seq_len = 64
    cfg.pretrain.warmup_steps = 10
    cfg.pretrain.checkpoint_every = 50
    cfg.finetune.examples_per_class = 300
    cfg.finetune.batch_size = 16
    cfg.finetune.max_len = 64
    cfg.align.sft_examples = 64
    cfg.align.dpo_pairs = 32
    cfg.align.eval_pairs = 16
    cfg.align.max_len = 64
    cfg.evaluate.max_examples = 300
    cfg.evaluate.perplexity_docs = 200
    cfg.evaluate.max_new_tokens = 16
    cfg.serve.max_new_tokens = 12
    return cfg


def _gpu_pretrain(cfg: PipelineConfig, nodes: int, gpus: int) -> PipelineConfig:
    """Shared by the GPU presets: megatron backend, bf16, a 32k Korean vocab, one process per GPU."""
    cfg.tokenizer.vocab_size = 32000
    cfg.run.nodes, cfg.run.gpus_per_node = nodes, gpus
    cfg.run.time_limit = "04:00:00"
    p = cfg.pretrain
    p.backend, p.precision, p.nproc_per_node = "megatron", "bf16", gpus
    p.warmup_steps, p.min_lr_ratio, p.weight_decay = 500, 0.1, 0.1
    p.checkpoint_every, p.log_every = 1000, 10
    p.threads = 0
    # torch backend on GPUs: 4,096-token chunks (x 32k vocab) keep the LM-head matmuls GPU-sized;
    # the default 256 suits a CPU's cache
    p.loss_chunk = 4096
    return cfg


def small() -> PipelineConfig:
    """~125M parameters (GPT-2 small width, Llama layout) on one GPU."""
    cfg = _gpu_pretrain(PipelineConfig(preset="small"), nodes=1, gpus=1)
    cfg.model = ModelConfig(hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=4, intermediate_size=2048,
                            max_seq_len=2048)
    cfg.pretrain.steps, cfg.pretrain.batch_size, cfg.pretrain.micro_batch_size = 20000, 64, 16
    cfg.pretrain.seq_len, cfg.pretrain.lr = 2048, 6e-4
    return cfg


def llama_1b() -> PipelineConfig:
    """~1.2B parameters (Llama 3.2 1B shape, our vocab) on one node of 8 GPUs, data parallel."""
    cfg = _gpu_pretrain(PipelineConfig(preset="1b"), nodes=1, gpus=8)
    cfg.model = ModelConfig(hidden_size=2048, num_layers=16, num_heads=32, num_kv_heads=8, intermediate_size=8192,
                            max_seq_len=4096)
    cfg.pretrain.steps, cfg.pretrain.batch_size, cfg.pretrain.micro_batch_size = 50000, 256, 4
    cfg.pretrain.seq_len, cfg.pretrain.lr = 4096, 3e-4
    cfg.pretrain.distributed_optimizer = True
    return cfg


def llama_8b() -> PipelineConfig:
    """~8B parameters (Llama 3 8B shape, our vocab) on 4 nodes x 8 GPUs: TP 2 + sequence parallel."""
    cfg = _gpu_pretrain(PipelineConfig(preset="8b"), nodes=4, gpus=8)
    cfg.model = ModelConfig(hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=8, intermediate_size=14336,
                            max_seq_len=8192)
    cfg.pretrain.steps, cfg.pretrain.batch_size, cfg.pretrain.micro_batch_size = 100000, 512, 1
    cfg.pretrain.seq_len, cfg.pretrain.lr = 8192, 3e-4
    cfg.pretrain.tensor_parallel, cfg.pretrain.sequence_parallel = 2, True
    cfg.pretrain.distributed_optimizer = True
    cfg.run.time_limit = "12:00:00"
    return cfg


PRESETS: dict[str, typing.Callable[[], PipelineConfig]] = {"tiny": tiny, "ci": ci, "small": small,
                                                            "1b": llama_1b, "8b": llama_8b}


def from_preset(name: str) -> PipelineConfig:
    if name not in PRESETS:
        raise KollmError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()


def _field_types(obj) -> dict[str, typing.Any]:
    return typing.get_type_hints(type(obj))


def _parse_value(raw: str, typ, key: str):
    origin = typing.get_origin(typ)
    try:
        if typ is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
        if typ is str:
            return raw
        if origin is list:
            value = json.loads(raw)
            if not isinstance(value, list):
                raise ValueError(raw)
            return value
    except (ValueError, json.JSONDecodeError):
        name = getattr(typ, "__name__", str(typ))
        raise KollmError(f"override {key}={raw!r}: expected a value of type {name}") from None
    raise KollmError(f"override {key}: unsupported type {typ}")


def valid_keys(cfg: PipelineConfig) -> list[str]:
    keys = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            keys += [f"{f.name}.{g.name}" for g in dataclasses.fields(value)]
        else:
            keys.append(f.name)
    return keys


def apply_overrides(cfg: PipelineConfig, overrides: list[str]) -> PipelineConfig:
    """Apply `section.key=value` strings in order; unknown keys and bad values raise KollmError."""
    for item in overrides:
        if "=" not in item:
            raise KollmError(f"override {item!r} is not of the form section.key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        target = cfg
        for part in parts[:-1]:
            child = getattr(target, part, None)
            if not dataclasses.is_dataclass(child):
                raise KollmError(_unknown_key(cfg, key))
            target = child
        types = _field_types(target)
        leaf = parts[-1]
        if leaf not in types or dataclasses.is_dataclass(getattr(target, leaf)):
            raise KollmError(_unknown_key(cfg, key))
        setattr(target, leaf, _parse_value(raw, types[leaf], key))
    return cfg


def _unknown_key(cfg: PipelineConfig, key: str) -> str:
    import difflib

    keys = valid_keys(cfg)
    close = difflib.get_close_matches(key, keys, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; valid sections: {', '.join(f.name for f in dataclasses.fields(cfg))}"
    return f"unknown override key {key!r}{hint}"


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(data: dict) -> PipelineConfig:
    cfg = PipelineConfig()
    for f in dataclasses.fields(cfg):
        if f.name not in data:
            continue
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            setattr(cfg, f.name, type(value)(**data[f.name]))
        else:
            setattr(cfg, f.name, data[f.name])
    return cfg


PRECISIONS = ("bf16", "fp32")
CURATE_EXECUTORS = ("inprocess", "ray")
PRETRAIN_BACKENDS = ("torch", "megatron")
ATTENTION_KERNELS = ("auto", "eager", "sdpa")


def validate(cfg: PipelineConfig) -> None:
    """Cross-field checks, run before launching (CLI) and again where the values are used."""
    if cfg.pretrain.precision not in PRECISIONS:
        raise KollmError(f"pretrain.precision={cfg.pretrain.precision!r}: choose {' or '.join(PRECISIONS)}")
    if cfg.pretrain.seq_len > cfg.model.max_seq_len:
        raise KollmError(f"pretrain.seq_len={cfg.pretrain.seq_len} exceeds model.max_seq_len={cfg.model.max_seq_len}")
    p = cfg.pretrain
    if p.backend not in PRETRAIN_BACKENDS:
        raise KollmError(f"pretrain.backend={p.backend!r}: choose {' or '.join(PRETRAIN_BACKENDS)}")
    if p.strategy not in ("ddp", "fsdp"):
        raise KollmError(f"pretrain.strategy={p.strategy!r}: choose ddp or fsdp")
    if p.attention not in ATTENTION_KERNELS:
        raise KollmError(f"pretrain.attention={p.attention!r}: choose {', '.join(ATTENTION_KERNELS)}")
    if p.checkpoint_every < 1:
        raise KollmError(f"pretrain.checkpoint_every={p.checkpoint_every}: the pretrain stage exports its last "
                         "checkpoint, so it needs them (every N >= 1 steps)")
    if p.loss_chunk < 0:
        raise KollmError(f"pretrain.loss_chunk={p.loss_chunk}: tokens per chunk (>= 1), or 0 for the plain loss")
    if p.fp8 not in ("", "hybrid", "e4m3"):
        raise KollmError(f"pretrain.fp8={p.fp8!r}: choose '' (off), hybrid or e4m3")
    if p.fp8 and p.backend != "megatron":
        raise KollmError("pretrain.fp8 needs pretrain.backend=megatron (Transformer Engine)")
    model_parallel = p.tensor_parallel * p.pipeline_parallel * p.context_parallel
    if p.backend == "torch" and model_parallel > 1:
        raise KollmError("tensor/pipeline/context parallelism needs pretrain.backend=megatron")
    world = p.nproc_per_node * cfg.run.nodes
    if world % model_parallel:
        raise KollmError(f"{world} processes (run.nodes x pretrain.nproc_per_node) are not divisible by "
                         f"TP x PP x CP = {model_parallel}")
    data_parallel = world // model_parallel
    if p.batch_size % data_parallel:
        raise KollmError(f"pretrain.batch_size={p.batch_size} must be divisible by the {data_parallel} "
                         "data-parallel ranks")
    if p.micro_batch_size and (p.batch_size // data_parallel) % p.micro_batch_size:
        raise KollmError(f"pretrain.micro_batch_size={p.micro_batch_size} must divide the "
                         f"{p.batch_size // data_parallel} rows each of the {data_parallel} data-parallel ranks gets")
    if cfg.model.num_heads % p.tensor_parallel or cfg.model.num_kv_heads % p.tensor_parallel:
        raise KollmError(f"model.num_heads={cfg.model.num_heads} and model.num_kv_heads={cfg.model.num_kv_heads} "
                         f"must be divisible by pretrain.tensor_parallel={p.tensor_parallel}")
    if cfg.model.num_layers % p.pipeline_parallel:
        raise KollmError(f"model.num_layers={cfg.model.num_layers} must be divisible by "
                         f"pretrain.pipeline_parallel={p.pipeline_parallel}")
    if bool(p.corpus) != bool(p.tokenizer_dir):
        raise KollmError("standalone pretraining needs both pretrain.corpus and pretrain.tokenizer_dir")
    if cfg.curate.executor not in CURATE_EXECUTORS:
        raise KollmError(f"curate.executor={cfg.curate.executor!r}: choose {' or '.join(CURATE_EXECUTORS)}")
    if cfg.curate.fuzzy_backend not in ("auto", "cpu", "gpu"):
        raise KollmError(f"curate.fuzzy_backend={cfg.curate.fuzzy_backend!r}: choose auto, cpu or gpu")
    if cfg.curate.output_format not in ("jsonl", "parquet"):
        raise KollmError(f"curate.output_format={cfg.curate.output_format!r}: choose jsonl or parquet")
    if cfg.curate.shard_docs < 1:
        raise KollmError(f"curate.shard_docs={cfg.curate.shard_docs}: must be at least 1")


def build(preset: str, overrides: list[str]) -> PipelineConfig:
    return apply_overrides(from_preset(preset), overrides)
