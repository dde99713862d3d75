import os
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# NeMo Run reads its home once, at import: keep test experiments out of the user's ~/.nemo_run
os.environ.setdefault("NEMORUN_HOME", __import__("tempfile").mkdtemp(prefix="kollm-nemorun-"))

from kollm.data import sources  # noqa: E402

REPO = sources.repo_root()
SERVE_PYTHON = os.path.join(REPO, ".venv-serve", "bin", "python")


@pytest.fixture(scope="session")
def data_dir():
    try:
        return sources.resolve_data_dir()
    except Exception as e:  # a user machine without ../shared/data and no download yet
        pytest.skip(f"Korean data not available: {e}")


def _data_stage(preset, data_dir, folder):
    from recipes import presets
    from stages import data

    return data.run(presets.build(preset, [f"data.data_dir={data_dir}"]), str(folder))["outputs"].paths()


@pytest.fixture(scope="session")
def data_files(data_dir, tmp_path_factory):
    """The data stage's files (the ci preset's splits of the real data), by output name."""
    return _data_stage("ci", data_dir, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def all_data_files(data_dir, tmp_path_factory):
    """The data stage's files with every review and comment in the task splits (the tiny preset's; ci keeps
    30,000 reviews and 3,000 comments; tiny samples only its pretraining documents)."""
    return _data_stage("tiny", data_dir, tmp_path_factory.mktemp("all_data"))


@pytest.fixture(scope="session")
def nsmc_rows(data_dir):
    return list(sources.iter_nsmc(data_dir, limit=20000))


@pytest.fixture(scope="session")
def korean_tokenizer(nsmc_rows, tmp_path_factory):
    """A small BPE trained on 20k real NSMC reviews, saved and reloaded as a HF tokenizer."""
    from transformers import AutoTokenizer

    from kollm.tokenization import train_bpe

    path = tmp_path_factory.mktemp("tokenizer")
    train_bpe((r["text"] for r in nsmc_rows), vocab_size=3000).save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="session")
def tiny_model_dir(korean_tokenizer, nsmc_rows, tmp_path_factory):
    """A 2-layer Llama with the Korean tokenizer, pretrained for a few seconds on real reviews."""

    from kollm.config import ModelConfig, PretrainConfig
    from kollm.models import build_model
    from kollm.pretrain import indexed_data
    from kollm.pretrain import torch_backend as pretrain

    path = tmp_path_factory.mktemp("model")
    work = tmp_path_factory.mktemp("model_work")
    write_corpus(nsmc_rows[:5000], work / "corpus.jsonl")
    korean_tokenizer.save_pretrained(work / "tok")
    indexed_data.build_indexed_dataset(
        str(work / "corpus.jsonl"), str(work / "tok"), str(work / "tokens"), workers=1, progress=False
    )
    model = build_model(
        ModelConfig(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128, max_seq_len=64),
        korean_tokenizer,
        seed=0,
    )
    pretrain.train_loop(
        model,
        indexed_data.load_tokens(str(work / "tokens")),
        PretrainConfig(
            steps=200, batch_size=16, seq_len=64, lr=5e-3, warmup_steps=10, checkpoint_every=1000, log_every=10
        ),
        str(work),
        1.0,
    )
    model.save_pretrained(path, safe_serialization=True)
    korean_tokenizer.save_pretrained(path)
    return str(path)


def write_corpus(rows, path) -> str:
    """NSMC rows as a curated-corpus JSONL ({"id", "text"} per line), what pretraining reads."""
    import json

    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps({"id": r["review_id"], "text": r["text"]}, ensure_ascii=False) + "\n")
    return str(path)


def run_cli(args, env=None, python=sys.executable, timeout=600, cwd=None):
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [python, "-m", "recipes.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd or REPO,
    )


def write_manifest(stage_dir, stage: str, body: dict | None = None, **outputs: str) -> None:
    """A completed stage's manifest as the runner writes it: every output its record declares ("" unless given),
    plus `body` (fingerprint, counts, metrics ...)."""
    import json

    from stages import by_name

    recorded = {name: outputs.pop(name, "") for name in by_name(stage).outputs.names()}
    assert not outputs, f"{stage} declares no outputs {sorted(outputs)}"
    os.makedirs(stage_dir, exist_ok=True)
    manifest = {"stage": stage, "status": "complete", "fingerprint": "f" + stage, **(body or {}), "outputs": recorded}
    with open(os.path.join(stage_dir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f)


def tiny_random_llama(vocab_size: int, seed: int):
    """A 2-layer random HF Llama for comparing a hand-written loss with TRL's on one batch."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        initializer_range=0.2,  # wider than HF's 0.02: peaked, varied next-token distributions
    )
    return LlamaForCausalLM(cfg)
