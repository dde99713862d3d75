"""The pipeline's stages, each declared once, in the order they run.

The runner (stages.runner), the NeMo Run tasks (recipes.stage_tasks), the CLI and `kollm run --help`
all read this list. Adding a stage is its module in this folder (its outputs record and
`run(cfg, out) -> dict` returning it) and one `Stage(...)` line below: docs/architecture.md,
"Adding a stage", shows one whole. A stage with settings of its own also gets a config section
(`kollm/<package>/config.py`, a field of `kollm.config.PipelineConfig`).
"""

from __future__ import annotations

from stages import align, curate, data, evaluate, export, finetune, pretrain, quantize, serve, tokenizer
from stages.base import Launch, Stage

STAGES: tuple[Stage, ...] = (
    Stage("data", data.run, outputs=data.DataOutputs),
    Stage(
        "curate",
        curate.run,
        upstream=("data",),
        outputs=curate.CurateOutputs,
        launch=Launch(multi_node=curate.on_ray),  # Curator's Ray cluster spans the nodes
    ),
    Stage("tokenizer", tokenizer.run, upstream=("curate",), outputs=tokenizer.TokenizerOutputs),
    Stage(
        "pretrain",
        pretrain.run,
        upstream=("curate", "tokenizer"),
        sections=("model", "pretrain"),
        outputs=pretrain.PretrainOutputs,
        standalone=pretrain.standalone,
        launch=Launch(ranks=pretrain.ranks_per_node, multi_node=pretrain.multi_node, requeue=True),
    ),
    Stage("finetune", finetune.run, upstream=("data", "pretrain"), outputs=finetune.FinetuneOutputs),
    Stage(
        "align",
        align.run,
        upstream=("data", "curate", "pretrain"),
        outputs=align.AlignOutputs,
        roles={"model": "model_dir"},  # its last policy is the model evaluate, export, quantize and serve use
    ),
    Stage(
        "evaluate",
        evaluate.run,
        upstream=("data", "curate", "pretrain", "finetune", "align"),
        outputs=evaluate.EvaluateOutputs,
        config_reads=("finetune.max_len", "model.max_seq_len"),  # score fine-tuned models as trained; context
    ),
    Stage(
        "export",
        export.run,
        upstream=("pretrain", "align", "evaluate"),
        outputs=export.ExportOutputs,
        config_reads=("align.steps",),  # the model card says how the model was aligned
    ),
    Stage(
        "quantize",
        quantize.run,
        upstream=("data", "curate", "finetune", "align"),
        outputs=quantize.QuantizeOutputs,
        config_reads=("align.max_len", "finetune.max_len"),  # measure each model at the length it was trained on
    ),
    Stage(
        "serve",
        serve.run,
        upstream=("align",),
        env="serve",
        outputs=serve.ServeOutputs,
        preflight=serve.preflight,
    ),
)

NAMES: list[str] = [s.name for s in STAGES]


def by_name(name: str) -> Stage:
    from kollm.core import KollmError

    for stage in STAGES:
        if stage.name == name:
            return stage
    raise KollmError(f"unknown stage {name!r}; choose one of: {', '.join(NAMES)}")
