import os
import subprocess
import sys

from tests.conftest import REPO


def test_readme_numbers_render_from_benchmark_results():
    """README figures come from benchmarks/results/*.json, never typed by hand."""
    proc = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "render.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_readme_shows_exactly_the_two_commands_and_ci_runs_the_test_one():
    readme = open(os.path.join(REPO, "README.md")).read()
    block = readme.split("## Two commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    ci = open(os.path.join(REPO, ".ci", "run")).read()
    assert "make test" in ci
