import os
import subprocess
import sys

from tests.conftest import REPO, write_manifest


def test_readme_numbers_render_from_benchmark_results():
    """README figures come from benchmarks/results/*.json, never typed by hand."""
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "render.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_readme_shows_exactly_the_two_commands_and_ci_runs_the_test_one():
    readme = open(os.path.join(REPO, "README.md")).read()
    block = readme.split("## Two commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    ci = open(os.path.join(REPO, ".ci", "run")).read()
    assert "make test" in ci


def test_the_workshop_has_ten_weeks_each_with_commands_numbers_and_checkpoints():
    import glob

    pages = sorted(glob.glob(os.path.join(REPO, "docs", "workshop", "week*.md")))
    assert [os.path.basename(p)[:6] for p in pages] == [f"week{n:02d}" for n in range(1, 11)]
    for n, page in enumerate(pages, start=1):
        text = open(page, encoding="utf-8").read()
        for heading in (
            "## Goal",
            "## Commands",
            "## What they produce",
            "## Numbers from a real run",
            "## Checkpoint questions",
        ):
            assert heading in text, f"{page}: no {heading}"
        block = text.split(f"<!-- results:week{n:02d} -->", 1)[1].split(f"<!-- /results:week{n:02d} -->", 1)[0]
        assert "측정:" in block or "아직 측정되지 않았습니다" in block, f"{page}: numbers not rendered"
        assert sum(ch >= "\uac00" and ch <= "\ud7a3" for ch in text) > 150, f"{page}: not written in Korean"


def test_first_generation_runs_a_plain_hf_pipeline_on_the_runs_models(tiny_model_dir, tmp_path):
    import json

    from benchmarks import first_generation

    run = tmp_path / "run"
    for stage in ("pretrain", "align"):  # finished stages, as their manifests record them
        (run / stage).mkdir(parents=True)
        os.symlink(tiny_model_dir, run / stage / "model")
        write_manifest(run / stage, stage, model_dir=str(run / stage / "model"))
    out = tmp_path / "first_generation.json"
    assert first_generation.main(["--run", str(run), "--max-new-tokens", "10", "--out", str(out)]) == 0
    result = json.load(open(out, encoding="utf-8"))
    for which in ("pretrained", "aligned"):  # the 2-layer fixture's words are noise; that it answers is the point
        assert isinstance(result[which]["output"], str) and result[which]["prompt"] == first_generation.PROMPTS[which]
        stage = {"pretrained": "pretrain", "aligned": "align"}[which]
        assert result[which]["model_dir"].endswith(os.path.join(stage, "model"))
    assert result["command"].startswith(".venv/bin/python benchmarks/first_generation.py --run ")
