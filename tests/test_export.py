"""The export stage's HF folder and model card, and `kollm export --push --dry-run` (the Hub itself is not reachable)."""

import hashlib
import json
import subprocess
import sys

from tests.conftest import REPO, write_manifest

METRICS = {
    "nsmc_finetuned_accuracy": 0.8123,
    "nsmc_aligned_accuracy": 0.51,
    "nsmc_tfidf_accuracy": 0.861,
    "heldout_perplexity_aligned": 701.79,
}


def _fake_run(root, model_dir):
    """Completed pretrain/align/evaluate manifests pointing at a real model folder."""
    pretrained = {"counts": {"parameters": 123456, "tokens_seen": 4096}, "metrics": {"loss_last": 5.5}}
    write_manifest(root / "ci" / "pretrain", "pretrain", pretrained)
    write_manifest(root / "ci" / "align", "align", model_dir=model_dir)
    write_manifest(root / "ci" / "evaluate", "evaluate", {"metrics": METRICS}, report_json=model_dir + "/config.json")


def test_export_writes_a_loadable_folder_whose_card_has_the_runs_numbers_and_a_dry_run_push(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _fake_run(tmp_path, tiny_model_dir)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "recipes.cli",
            "export",
            "preset=ci",
            f"run.root={tmp_path}",
            "--push",
            "someone/kollm-ci",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = tmp_path / "ci" / "export" / "model"
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "license: cc-by-sa-4.0" in card and "language: ko" in card
    assert "| NSMC accuracy, fine-tuned classifier (same base) | 0.8123 |" in card  # from the report, not typed
    assert "scores 0.51 on NSMC (chance 0.5)" in card and "영화 리뷰를 써 주세요." in card
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    assert AutoTokenizer.from_pretrained(folder).chat_template
    # the dry run names every file with its size and sha256, and the target; nothing is uploaded
    assert "would upload" in proc.stdout and "https://huggingface.co/someone/kollm-ci" in proc.stdout
    weights = (folder / "model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() in proc.stdout and f"{len(weights):,} bytes" in proc.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "recipes.cli",
            "export",
            "preset=ci",
            f"run.root={tmp_path}",
            "--push",
            "not a repo",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert bad.returncode == 2 and bad.stderr.startswith(
        "error: --push 'not a repo': a Hub repository id is owner/name"
    )
