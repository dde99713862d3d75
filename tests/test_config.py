import dataclasses

import pytest

from kollm import config
from kollm.core import overrides
from kollm.core.errors import KollmError
from recipes import presets


def test_presets_differ_and_ci_is_smaller():
    tiny, ci = presets.from_preset("tiny"), presets.from_preset("ci")
    assert ci.pretrain.steps < tiny.pretrain.steps
    assert ci.model.hidden_size < tiny.model.hidden_size
    assert ci.run_dir.endswith("ci") and tiny.run_dir.endswith("tiny")


def test_overrides_are_typed():
    cfg = presets.build(
        "ci", ["pretrain.steps=7", "pretrain.lr=0.01", "run.force=true", "run.name=x", 'evaluate.prompts=["안녕"]']
    )
    assert cfg.pretrain.steps == 7 and isinstance(cfg.pretrain.steps, int)
    assert cfg.pretrain.lr == 0.01
    assert cfg.run.force is True
    assert cfg.run_dir.endswith("x")
    assert cfg.evaluate.prompts == ["안녕"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("pretrain.stepz=3", "unknown override key 'pretrain.stepz'; did you mean pretrain.steps"),
        ("nosuch.key=1", "unknown override key 'nosuch.key'"),
        ("pretrain=3", "unknown override key 'pretrain'"),
        ("pretrain.steps=many", "expected a value of type int"),
        ("run.force=maybe", "expected a value of type bool"),
        ("pretrain.steps", "not of the form section.key=value"),
    ],
)
def test_bad_overrides_raise_clear_errors(override, message):
    with pytest.raises(KollmError, match=message.replace("(", r"\(").replace(")", r"\)")):
        presets.build("tiny", [override])


def test_unknown_preset():
    with pytest.raises(KollmError, match="unknown preset 'huge'; choose one of: tiny, laptop, ci"):
        presets.from_preset("huge")


def test_dict_round_trip():
    cfg = presets.build("ci", ["pretrain.steps=9"])
    assert config.from_dict(config.to_dict(cfg)) == cfg


def test_serve_smoke_answer_cannot_wait_past_its_own_length():
    with pytest.raises(KollmError, match=r"serve.min_new_tokens=13: 0 to serve.max_new_tokens \(12\)"):
        config.validate(presets.build("ci", ["serve.min_new_tokens=13"]))
    config.validate(presets.build("ci", ["serve.min_new_tokens=12"]))


# Issue 34: sizes and counts are refused when non-positive, in one line, in every section; the fields where 0
# means something (config.ZERO_ALLOWED) take 0 and refuse negatives.
POSITIVE = [
    "run.nodes",
    "curate.shard_docs",
    "curate.max_chars",
    "curate.minhash_bands",
    "tokenizer.vocab_size",
    "model.hidden_size",
    "model.num_layers",
    "model.num_heads",
    "model.num_kv_heads",
    "model.max_seq_len",
    "pretrain.steps",
    "pretrain.batch_size",
    "pretrain.seq_len",
    "pretrain.nproc_per_node",
    "pretrain.tensor_parallel",
    "pretrain.log_every",
    "finetune.epochs",
    "finetune.batch_size",
    "finetune.max_len",
    "finetune.lora_r",
    "align.batch_size",
    "align.grpo_generations",
    "align.sft_epochs",
    "align.max_len",
    "evaluate.max_new_tokens",
    "evaluate.perplexity_docs",
    "quantize.calibration_len",
    "quantize.calibration_docs",
    "trtllm.max_batch_size",
    "trtllm.port",
    "serve.max_new_tokens",
    "serve.max_batch",
]


@pytest.mark.parametrize("value", [-5, 0])
@pytest.mark.parametrize("key", POSITIVE)
def test_non_positive_sizes_are_refused_in_one_line(key, value):
    with pytest.raises(KollmError) as e:
        config.validate(presets.build("tiny", [f"{key}={value}"]))
    assert str(e.value) == f"{key}={value}: must be a positive integer (>= 1)"


# documented beside each field: 0 = all, one per CPU, no minimum, pick a free port, ...; seeds
ZERO_OK = [
    "run.gpus_per_node",
    "run.requeues",
    "data.max_reviews",
    "data.max_comments",
    "curate.workers",
    "curate.min_chars",
    "curate.min_eojeol",
    "curate.max_urls",
    "curate.fuzzy_min_chars",
    "tokenizer.min_frequency",
    "tokenizer.max_train_docs",
    "pretrain.micro_batch_size",
    "pretrain.loss_chunk",
    "pretrain.tokenize_workers",
    "pretrain.warmup_steps",
    "pretrain.seed",
    "pretrain.threads",
    "finetune.examples_per_class",
    "finetune.min_steps",
    "finetune.seed",
    "align.sft_task_examples",
    "align.seed",
    "evaluate.max_examples",
    "evaluate.baseline_examples_per_class",
    "evaluate.zero_shot_examples",
    "evaluate.shots",
    "serve.min_new_tokens",
    "serve.http_port",
    "serve.grpc_port",
    "serve.metrics_port",
]


@pytest.mark.parametrize("key", ZERO_OK)
def test_fields_where_zero_means_something_take_zero_but_not_negatives(key):
    is_list = key == "evaluate.shots"
    config.validate(presets.build("tiny", [f"{key}={[0] if is_list else 0}"]))
    bad = [0, -1] if is_list else -1
    with pytest.raises(KollmError) as e:
        config.validate(presets.build("tiny", [f"{key}={bad}"]))
    must = "each must be" if is_list else "must be"
    assert str(e.value) == f"{key}={bad}: {must} an integer >= 0 ({config.ZERO_ALLOWED[key]})"
    assert "\n" not in str(e.value)


def test_every_integer_field_is_a_size_or_listed_where_zero_means_something():
    """ZERO_ALLOWED names only integer fields (no stale entry), the positive list above only sizes, and the
    check covers every section's integer fields."""
    fields = {key for key, _, _ in overrides.int_fields(config.PipelineConfig())}
    assert set(config.ZERO_ALLOWED) == set(ZERO_OK) and set(ZERO_OK) <= fields
    assert set(POSITIVE) <= fields - set(ZERO_OK)
    sections = {f.name for f in dataclasses.fields(config.PipelineConfig())} - {"preset", "export"}
    assert {key.split(".")[0] for key in fields} == sections  # export has no integer field


def test_a_size_read_from_a_config_file_must_be_an_integer():
    cfg = presets.from_preset("ci")
    cfg.pretrain.steps = "300"
    with pytest.raises(KollmError, match=r"^pretrain.steps='300': must be a positive integer \(>= 1\)$"):
        config.validate(cfg)


@pytest.mark.parametrize("name", [None, *presets.PRESETS])
def test_every_preset_validates(name):
    config.validate(config.PipelineConfig() if name is None else presets.from_preset(name))


@pytest.mark.parametrize(
    "args",
    [
        ["config", "preset=tiny", "pretrain.steps=-5"],
        ["config", "preset=tiny", "pretrain.steps=0"],
        ["stage", "pretrain", "preset=tiny", "pretrain.steps=-5"],
    ],
)
def test_the_cli_refuses_a_non_positive_size_in_one_line(args, tmp_path):
    from tests.conftest import run_cli

    proc = run_cli(args + ([f"run.root={tmp_path}"] if args[0] == "stage" else []))
    value = args[-1].split("=")[1]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: pretrain.steps={value}: must be a positive integer (>= 1)"], proc.stderr
    if args[0] == "config":
        assert proc.stderr.strip() == errors[0] and proc.stdout == ""


@pytest.mark.parametrize(
    "override, message",
    [
        ('align.steps=["sft", "ppo"]', "align.steps=['sft', 'ppo']: 'ppo' is not one of sft, dpo, reward, grpo"),
        (
            "finetune.tasks=nsmc,kobest",
            "finetune.tasks=['nsmc', 'kobest']: 'kobest' is not one of nsmc, klue_nli, hate",
        ),
        ('quantize.formats=["nvfp4"]', "quantize.formats=['nvfp4']: 'nvfp4' is not one of int8_sq, fp8, int4_awq"),
    ],
)
def test_list_items_are_choices_checked_like_fields(override, message):
    """`list[Literal[...]]` fields (tasks, steps, formats) are checked by the same function as `Literal` fields."""
    with pytest.raises(KollmError) as e:
        config.validate(presets.build("ci", [override]))
    assert str(e.value).startswith(message)


def test_every_list_of_choices_is_typed_so():
    """No list field of words is checked by hand: each is `list[Literal[...]]` (or free text: prompts, mounts)."""
    import typing

    free_text = {"evaluate.prompts", "run.container_mounts"}
    for section in dataclasses.fields(config.PipelineConfig()):
        obj = getattr(config.PipelineConfig(), section.name)
        if not dataclasses.is_dataclass(obj):
            continue
        for name, typ in typing.get_type_hints(type(obj)).items():
            if typing.get_origin(typ) is list and f"{section.name}.{name}" not in free_text:
                item = typing.get_args(typ)[0]
                assert item is int or typing.get_origin(item) is typing.Literal, f"{section.name}.{name}: {typ}"
