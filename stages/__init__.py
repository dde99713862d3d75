"""The pipeline's stages, each declared once, in the order they run.

The runner (stages.runner), the NeMo Run tasks (recipes.tasks), the CLI and `kollm run --help`
all read this list. Adding a stage is three things: its module here (`run(cfg, out) -> dict` with
the manifest's "outputs"), its config section (`kollm/<package>/config.py`, a field of
`kollm.config.PipelineConfig`), and one `Stage(...)` line below.
"""

from __future__ import annotations

from stages import align, curate, data, evaluate, export, finetune, pretrain, quantize, serve, tokenizer
from stages.base import Launch, Stage

STAGES: tuple[Stage, ...] = (
    Stage(
        "data",
        data.run,
        outputs=(
            "nsmc_train",
            "nsmc_val",
            "nsmc_test",
            "hate_train",
            "hate_dev",
            "klue_nli_train",
            "klue_nli_test",
            "klue_sts",
            "corpus_raw",
            "heldout_raw",
        ),
    ),
    Stage(
        "curate",
        curate.run,
        upstream=("data",),
        outputs=("corpus", "heldout", "toxicity_model", "curation_dir"),
        launch=Launch(multi_node=curate.on_ray),  # Curator's Ray cluster spans the nodes
    ),
    Stage("tokenizer", tokenizer.run, upstream=("curate",), outputs=("tokenizer_dir",)),
    Stage(
        "pretrain",
        pretrain.run,
        upstream=("curate", "tokenizer"),
        sections=("model", "pretrain"),
        outputs=("model_dir", "loss_png", "metrics", "indexed_data"),
        standalone=pretrain.standalone,
        launch=Launch(ranks=pretrain.ranks_per_node, multi_node=pretrain.multi_node, requeue=True),
    ),
    Stage("finetune", finetune.run, upstream=("data", "pretrain"), outputs=("results",)),
    Stage(
        "align",
        align.run,
        upstream=("data", "curate", "pretrain"),
        outputs=("model_dir", "metrics", "datacard", "nemo_rl_dir", "nemo_aligner_dir"),
        roles={"model": "model_dir"},  # its last policy is the model export, quantize and serve ship
    ),
    Stage(
        "evaluate",
        evaluate.run,
        upstream=("data", "curate", "pretrain", "finetune", "align"),
        outputs=("report_md", "report_json"),
    ),
    Stage("export", export.run, upstream=("pretrain", "align", "evaluate"), outputs=("model_dir",)),
    Stage("quantize", quantize.run, upstream=("data", "curate", "finetune", "align"), outputs=("table", "checkpoints")),
    Stage(
        "serve",
        serve.run,
        upstream=("align",),
        env="serve",
        outputs=("model_repository", "server_log"),
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
