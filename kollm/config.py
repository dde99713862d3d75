"""Typed pipeline configuration and dotted overrides (Megatron-Bridge style).

One dataclass per config section (a stage's section is named like the stage); the recipes in
recipes/presets.py are plain functions returning a `PipelineConfig`, and users change one with
`section.key=value` overrides, never by editing code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from typing import Literal

from kollm import prompts
from kollm.errors import KollmError

# Choices live on the fields (litgpt style) and are checked once, in `validate`, for every field typed so.
Executor = Literal["local", "slurm", "docker"]
CurateExecutor = Literal["inprocess", "ray"]
OutputFormat = Literal["jsonl", "parquet"]
FuzzyBackend = Literal["auto", "cpu", "gpu"]
Backend = Literal["torch", "megatron"]
Precision = Literal["bf16", "fp32"]
Strategy = Literal["ddp", "fsdp"]
Attention = Literal["auto", "eager", "sdpa"]
Fp8 = Literal["", "hybrid", "e4m3"]
PRECISIONS = typing.get_args(Precision)
# fine-tuning (kollm/finetuning): what trains, which head answers, which library runs it
FinetuneMethod = Literal["full", "lora", "dora", "waveft", "prompt_tuning", "qlora"]
FinetuneHead = Literal["lm", "cls"]  # lm: the causal LM answers a label word; cls: a classification head
FinetuneBackend = Literal["hf", "automodel"]  # HF PEFT + kollm's loop, or NeMo AutoModel (.venv-automodel)
FinetuneTask = Literal["nsmc", "klue_nli", "hate"]
AlignStep = Literal["sft", "dpo", "reward", "grpo"]  # in this order; each step's model feeds the next
# kollm/tokenizer.py says what each kind is; benchmarks/tokenizer_study.py compares them
Arch = Literal["llama", "mamba2", "mamba", "rwkv", "moe", "mla_moe", "hybrid"]  # kollm/architectures.py
ModelImpl = Literal["hf", "scratch"]  # HF transformers' Llama, or kollm/gpt.py (the same weights, written out)
TokenizerKind = Literal["char", "bpe_metaspace", "bpe_bytelevel", "spm_bpe", "spm_unigram", "jamo_bpe", "kiwi_bpe"]


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
    profile: str = ""  # the cluster profile these values came from (kollm/cluster.py); set by the CLI
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
class DataConfig:
    data_dir: str = ""  # empty: $KOLLM_DATA_DIR, ../shared/data, then the download cache
    max_reviews: int = 0  # 0 = every NSMC review
    val_fraction: float = 0.05  # of movies, by movie_id
    test_fraction: float = 0.05
    max_comments: int = 0  # unlabeled web comments for pretraining; 0 = all
    # share of the pretraining documents kept, the same share of every source, chosen by a hash of the
    # document id; the labelled splits (fine-tuning, evaluation, baselines) are never sampled
    corpus_fraction: float = 1.0


@dataclass
class CurateConfig:
    """Korean curation (curator_pipelines/): thresholds chosen from the corpus histograms."""
    executor: CurateExecutor = "inprocess"  # ray: Curator's RayDataExecutor on this machine
    workers: int = 0  # inprocess: worker processes over shards; 0 = one per CPU, 1 = this process only
    ray_cpus_per_stage: float = 0.5  # fractional: whole-CPU stages deadlock Ray on 2 cores
    shard_docs: int = 50_000  # lines per shard: the unit of parallelism and of resume
    output_format: OutputFormat = "jsonl"
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
    fuzzy_backend: FuzzyBackend = "auto"  # cpu: kollm MinHash; gpu: Curator's cuDF workflow; auto: gpu if cuDF imports
    minhash_ngram: int = 3  # character shingles of the key without spaces/punctuation
    minhash_bands: int = 20
    minhash_rows: int = 4
    jaccard_threshold: float = 0.6
    fuzzy_min_chars: int = 10


@dataclass
class TokenizerConfig:
    kind: TokenizerKind = "bpe_metaspace"
    vocab_size: int = 8000  # every model config takes its vocabulary from the trained tokenizer
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
    # the other architectures keep hidden size and depth and match the Llama's non-embedding parameters
    arch: Arch = "llama"
    impl: ModelImpl = "hf"  # scratch: the torch backend trains kollm/gpt.py and exports it as the HF Llama it equals


@dataclass
class PretrainConfig:
    # torch: the HF Llama + a PyTorch loop (one process, or DDP/FSDP2 under torchrun);
    # megatron: megatron-core GPTModel of the same architecture, TP/PP/CP/DP (GPUs)
    backend: Backend = "torch"
    precision: Precision = "bf16"  # bf16 autocast (fp32 master weights) or fp32; CPUs with AMX run bf16 fast
    nproc_per_node: int = 1  # processes per node under torchrun: GPUs, or gloo ranks on a CPU
    strategy: Strategy = "ddp"  # torch backend with several processes: DDP, or FSDP2 fully_shard
    tensor_parallel: int = 1  # megatron backend
    pipeline_parallel: int = 1
    context_parallel: int = 1
    sequence_parallel: bool = False
    distributed_optimizer: bool = False  # megatron: shard optimizer state over data-parallel ranks
    fp8: Fp8 = ""  # megatron + Transformer Engine on Hopper: "" (off)
    # rows per forward/backward pass on each rank, gradients accumulated up to the rank's share of
    # batch_size (megatron: its pipeline schedule's micro-batches); 0 = the rank's whole share at once
    micro_batch_size: int = 0
    # torch backend: LM head + cross-entropy fused, this many tokens at a time (kollm.losses),
    # so the [tokens, vocab] logits never exist; 0 = plain logits and F.cross_entropy
    loss_chunk: int = 256
    # torch backend attention kernel: auto = eager on CPUs (tiny preset, profiled: attention
    # forward+backward 16 ms a step, SDPA's CPU flash kernel 93 ms), sdpa on GPUs
    attention: Attention = "auto"
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
    tasks: list[str] = field(default_factory=lambda: ["nsmc", "klue_nli", "hate"])  # FinetuneTask names
    method: FinetuneMethod = "lora"
    head: FinetuneHead = "lm"
    backend: FinetuneBackend = "hf"
    examples_per_class: int = 4000  # train rows per label (fewer if a task has fewer); 0 = all
    epochs: int = 1
    min_steps: int = 0  # at least this many steps: more passes over a small task's rows
    batch_size: int = 32
    lr: float = 2e-3  # adapters: LoRA, DoRA, WaveFT, QLoRA
    full_lr: float = 3e-4  # full fine-tuning
    prompt_lr: float = 3e-2  # prompt tuning: soft prompts need a much larger step
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    waveft_n_frequency: int = 2592  # per layer; capped at the smallest targeted layer's d_in * d_out
    prompt_tokens: int = 16
    max_len: int = 96
    # bf16 autocast with fp32 weights, as pretraining: 1.6x the examples/s of fp32 on these AMX cores
    # (h256-L4, batch 32: 145 vs 88); the hf backend only
    precision: Precision = "bf16"
    seed: int = 1234
    # backend automodel: the interpreter of NeMo AutoModel's environment; empty = the repo's .venv-automodel
    automodel_python: str = ""


@dataclass
class AlignConfig:
    # which steps run (TRL on CPU; aligner/nemo_rl.py writes the same steps for NeMo-RL on GPUs):
    # sft -> dpo -> grpo make the policy, reward trains GRPO's reward model next to it
    steps: list[str] = field(default_factory=lambda: ["sft", "dpo", "reward", "grpo"])
    sft_examples: int = 2000
    # sentiment questions on NSMC train reviews added to the SFT mixture's, so that the chat model keeps the
    # task: 2,000 of them (the laptop mixture's share) left its chat-format NSMC 7 points under the classifier's
    sft_task_examples: int = 0
    sft_epochs: int = 1
    dpo_pairs: int = 1000  # also the reward model's training pairs
    dpo_epochs: int = 1
    dpo_beta: float = 0.1
    dpo_sft_weight: float = 1.0  # weight of the chosen answers' NLL next to the DPO loss (RPO); 0 = plain DPO
    batch_size: int = 8
    sft_lr: float = 5e-4
    dpo_lr: float = 2e-4
    reward_lr: float = 2e-4
    reward_epochs: int = 1
    grpo_prompts: int = 48  # prompts GRPO samples answers to (review requests, comment requests)
    grpo_generations: int = 4  # answers per prompt (a group); align.batch_size must be a multiple
    grpo_max_new_tokens: int = 32
    grpo_lr: float = 3e-4  # at 1e-3 a 5M-parameter policy learnt to please the classifiers with gibberish
    grpo_beta: float = 0.1  # KL to the reference (the policy GRPO starts from); 0 = no reference model
    # GRPO's rewards, by weight (0 = unused): the reward model (when align.steps has reward), the
    # sentiment classifier (character n-grams on NSMC train reviews: a review request earns P(the
    # requested sentiment)), safety (1 - P(toxic), the curate stage's toxicity model)
    grpo_reward_model_weight: float = 0.5
    # 2: a review request's answer is judged by its sentiment first; at 1 (with the reward model's 0.5 and
    # safety's 1 beside it) GRPO took the laptop preset's sentiment-following from 0.86 to 0.84
    grpo_sentiment_weight: float = 2.0
    grpo_safety_weight: float = 1.0
    # a sentiment question on a real train review earns 1 for NSMC's own label word: the policy keeps the task.
    # 2, as a followed review request: at 1 the reward model's score (std ~1.5 x 0.5) outweighed it
    grpo_label_weight: float = 2.0
    # how a group's summed rewards become advantages (TRL's scale_rewards): "group" divides by each group's
    # own std, so four answers that all follow the request, rewards a hair apart, get advantages of +-1 from
    # noise; "batch" divides by the batch's std, so such groups barely move the policy (PPO Lite);
    # "none" is Dr. GRPO's choice
    grpo_scale_rewards: Literal["group", "batch", "none"] = "batch"
    sentiment_reward_examples: int = 20000  # train reviews per class the sentiment reward is fitted on
    lora: bool = False  # LoRA adapters for every step (merged before saving); the reference = adapters off
    lora_r: int = 8
    max_len: int = 128
    eval_pairs: int = 200
    seed: int = 1234


@dataclass
class EvaluateConfig:
    nsmc_path: str = ""  # any JSONL with the NSMC schema; empty = the run's test split
    max_examples: int = 2000  # balanced sample of the test set; 0 = all labelled rows
    # train rows per class for the TF-IDF + logistic-regression baselines; 0 = each task's whole train split
    baseline_examples_per_class: int = 0
    prompt_study_examples: int = 300  # NSMC test rows the prompting study asks each prompt on
    zero_shot_examples: int = 0  # rows per task for the zero-shot (lm-eval) scores, the first of the shuffled test rows; 0 = all
    shots: list[int] = field(default_factory=lambda: [0, 4])  # solved examples before the question
    perplexity_docs: int = 1000
    max_new_tokens: int = 48
    prompts: list[str] = field(default_factory=lambda: list(prompts.GENERATION_PROMPTS))


@dataclass
class ExportConfig:
    name: str = ""  # the model card's title; empty = kollm-<preset>
    # the strictest of the training data's licences (NSMC CC0; KLUE, korean-hate-speech CC BY-SA 4.0)
    license: str = "cc-by-sa-4.0"


@dataclass
class QuantizeConfig:
    # ModelOpt PTQ formats exported for TensorRT-LLM (kollm.quantization.MODELOPT_CONFIGS); int4 ones need
    # layer widths that are multiples of 128 and are skipped, with the reason, for models whose widths are not
    formats: list[str] = field(default_factory=lambda: ["int8_sq", "fp8", "int4_awq"])
    calibration_docs: int = 64  # curated corpus documents (the first, in corpus order) the scales come from
    calibration_len: int = 128
    perplexity_docs: int = 300  # held-out documents each format's perplexity is measured on
    nsmc_examples: int = 400  # balanced NSMC test reviews each format's (chat-format) accuracy is measured on


@dataclass
class TrtllmConfig:
    """TensorRT-LLM on GPU hosts (trtllm/, recipes/trtllm.py): what serves the quantize stage's checkpoints."""
    format: str = "fp8"  # which quantize-stage checkpoint (a quantize.formats entry, or bf16)
    container: str = "nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3"
    source_dir: str = "/workspace/TensorRT-LLM"  # a TensorRT-LLM checkout inside the container (llmapi model code)
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    max_batch_size: int = 64
    max_num_tokens: int = 8192
    kv_cache_free_gpu_memory_fraction: float = 0.85
    decoupled: bool = True  # streaming through Triton needs it
    host: str = "127.0.0.1"
    port: int = 8000
    bench_output_tokens: int = 128


@dataclass
class ServeConfig:
    prompt: str = prompts.WRITE_POSITIVE_REVIEW
    max_new_tokens: int = 32
    # the smoke test's answer waits this many tokens for its end of sequence: a 300-step model (preset ci)
    # once answered ".." and stopped, which shows the server works but not that the model writes Korean
    min_new_tokens: int = 8
    http_port: int = 0  # 0 = pick a free port
    grpc_port: int = 0
    metrics_port: int = 0
    startup_timeout_s: float = 120.0
    keep_running: bool = False  # leave the server up after the smoke test (demo use)
    max_batch: int = 16  # requests generated together (Triton dynamic batching); 1 = one at a time
    # torch dynamic int8 for the CPU model's nn.Linear layers: the pipeline ends in a served, quantised model.
    # At width 256 it costs ~20 % of the tokens/s of fp32 (benchmarks/results/serving.json); "" = fp32
    quantization: Literal["", "dynamic_int8"] = "dynamic_int8"
    # a unary answer still generating after this many seconds ends with an error (HTTP 500 / gRPC INTERNAL).
    # Over HTTP the model cannot tell that a unary client left, so this bounds the work one leaves behind;
    # streams and gRPC calls are cancelled when their client goes
    max_request_s: float = 60.0
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
    export: ExportConfig = field(default_factory=ExportConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    trtllm: TrtllmConfig = field(default_factory=TrtllmConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    @property
    def run_dir(self) -> str:
        import os

        return os.path.join(self.run.root, self.run.name or self.preset)


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
        if typ is str or origin is Literal:  # a Literal's choice is checked in validate, with the rest
            return raw
        if origin is list and not raw.lstrip().startswith("["):  # a,b,c for a list of words
            return [w.strip() for w in raw.split(",") if w.strip()]
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


def _section_fields(cfg: PipelineConfig):
    """(`section.name`, value, type) for every field of every section."""
    for section in dataclasses.fields(cfg):
        obj = getattr(cfg, section.name)
        if not dataclasses.is_dataclass(obj):
            continue
        for name, typ in _field_types(obj).items():
            yield f"{section.name}.{name}", getattr(obj, name), typ


def check_choices(cfg: PipelineConfig) -> None:
    """Every field typed `Literal[...]` holds one of its choices."""
    for key, value, typ in _section_fields(cfg):
        if typing.get_origin(typ) is Literal and value not in typing.get_args(typ):
            choices = ", ".join(c if c else "'' (off)" for c in typing.get_args(typ))
            raise KollmError(f"{key}={value!r}: choose {choices}")


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


def _int_fields(cfg: PipelineConfig):
    """(section.name, value, is_list) for every field typed `int` or `list[int]`, in every section."""
    for key, value, typ in _section_fields(cfg):
        if typ is int or typ == list[int]:
            yield key, value, typ != int


def check_sizes(cfg: PipelineConfig) -> None:
    """No integer field is negative, and none but those of ZERO_ALLOWED is 0: `pretrain.steps=-5` is refused in
    one line, before any division by it or any stage started with it."""
    for key, value, is_list in _int_fields(cfg):
        low = 0 if key in ZERO_ALLOWED else 1
        items = value if is_list and isinstance(value, list) else [value]
        if (is_list and not isinstance(value, list)) or not all(type(v) is int and v >= low for v in items):
            need = f"an integer >= 0 ({ZERO_ALLOWED[key]})" if low == 0 else "a positive integer (>= 1)"
            raise KollmError(f"{key}={value!r}: {'each must be' if is_list else 'must be'} {need}")


def validate(cfg: PipelineConfig) -> None:
    """Choices and cross-field checks, run before launching (CLI) and again where the values are used."""
    check_choices(cfg)
    if type(cfg.pretrain.checkpoint_every) is int and cfg.pretrain.checkpoint_every < 1:
        raise KollmError(f"pretrain.checkpoint_every={cfg.pretrain.checkpoint_every}: the pretrain stage exports "
                         "its last checkpoint, so it needs them (every N >= 1 steps)")
    check_sizes(cfg)
    if not cfg.serve.max_request_s > 0:
        raise KollmError(f"serve.max_request_s={cfg.serve.max_request_s}: seconds a unary answer may take, more than 0")
    if not 0 < cfg.data.corpus_fraction <= 1:
        raise KollmError(f"data.corpus_fraction={cfg.data.corpus_fraction}: a share of the documents, in (0, 1]")
    from kollm.quantization import MODELOPT_CONFIGS
    for fmt in cfg.quantize.formats:
        if fmt not in MODELOPT_CONFIGS:
            raise KollmError(f"quantize.formats: {fmt!r} is not a format; choose from {', '.join(MODELOPT_CONFIGS)}")
    if not 0 <= cfg.serve.min_new_tokens <= cfg.serve.max_new_tokens:
        raise KollmError(f"serve.min_new_tokens={cfg.serve.min_new_tokens}: 0 to serve.max_new_tokens "
                         f"({cfg.serve.max_new_tokens})")
    if not 1 <= cfg.serve.max_batch <= 256:
        raise KollmError(f"serve.max_batch={cfg.serve.max_batch}: requests generated together, 1 to 256")
    if cfg.pretrain.seq_len > cfg.model.max_seq_len:
        raise KollmError(f"pretrain.seq_len={cfg.pretrain.seq_len} exceeds model.max_seq_len={cfg.model.max_seq_len}")
    p = cfg.pretrain
    if cfg.model.arch != "llama" and (p.backend != "torch" or cfg.model.impl != "hf"):
        raise KollmError(f"model.arch={cfg.model.arch} is a HF transformers model: pretrain.backend=torch, model.impl=hf")
    if cfg.model.impl == "scratch" and p.backend != "torch":
        raise KollmError("model.impl=scratch (kollm/gpt.py) trains on pretrain.backend=torch")
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
    for task in cfg.finetune.tasks:
        if task not in typing.get_args(FinetuneTask):
            raise KollmError(f"finetune.tasks: unknown task {task!r}; choose from {', '.join(typing.get_args(FinetuneTask))}")
    _validate_align(cfg.align)


def check_grpo_groups(a: AlignConfig) -> None:
    """Each GRPO step samples whole groups of answers (TRL's own check says so later, less plainly)."""
    if a.batch_size % a.grpo_generations:
        raise KollmError(f"align.batch_size={a.batch_size} must be a multiple of align.grpo_generations="
                         f"{a.grpo_generations}: each GRPO step samples whole groups of answers")


def _validate_align(a: AlignConfig) -> None:
    order = list(typing.get_args(AlignStep))
    unknown = [s for s in a.steps if s not in order]
    if unknown or not a.steps:
        raise KollmError(f"align.steps={a.steps}: choose steps from {', '.join(order)} (in that order)")
    if a.steps != sorted(a.steps, key=order.index) or len(set(a.steps)) != len(a.steps):
        raise KollmError(f"align.steps={a.steps}: each step once, in the order {', '.join(order)}")
    if "sft" not in a.steps:
        raise KollmError("align.steps: the steps start from the SFT model, so they need sft")
    check_grpo_groups(a)
    if a.sft_task_examples < 0:
        raise KollmError(f"align.sft_task_examples={a.sft_task_examples}: extra sentiment questions, >= 0")
    if "grpo" in a.steps and not (a.grpo_sentiment_weight or a.grpo_safety_weight or a.grpo_label_weight
                                  or (a.grpo_reward_model_weight and "reward" in a.steps)):
        raise KollmError("align.steps has grpo but every GRPO reward weighs 0 (align.grpo_*_weight)")
