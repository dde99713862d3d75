"""Pipeline stages. Each stage module exposes `run(cfg, out_dir) -> dict` (the manifest body)."""

STAGES = ["data", "curate", "tokenizer", "pretrain", "finetune", "align", "evaluate", "serve"]

# What each stage reads: a stage refuses to start until these manifests are complete.
UPSTREAM = {
    "data": [],
    "curate": ["data"],
    "tokenizer": ["curate"],
    "pretrain": ["curate", "tokenizer"],
    "finetune": ["data", "pretrain"],
    "align": ["data", "pretrain"],
    "evaluate": ["data", "curate", "pretrain", "finetune", "align"],
    "serve": ["align"],
}

# The config sections a stage's result depends on (besides its upstream stages).
SECTIONS = {
    "data": ["data"],
    "curate": ["curate"],
    "tokenizer": ["tokenizer"],
    "pretrain": ["model", "pretrain"],
    "finetune": ["finetune"],
    "align": ["align"],
    "evaluate": ["evaluate"],
    "serve": ["serve"],
}


def upstream(cfg, stage: str) -> list[str]:
    """The stages `stage` reads in this config: standalone pretraining brings its own corpus/tokenizer."""
    if stage == "pretrain" and cfg.pretrain.corpus:
        return []
    return UPSTREAM[stage]
