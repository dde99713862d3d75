"""The repository is linted, formatted and type-checked: ruff (lint + format) on every Python file, mypy (basic
mode, third-party packages untyped) on kollm/, stages/ and recipes/. Settings: pyproject.toml."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

BIN = os.path.dirname(sys.executable)


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_clean(command):
    proc = subprocess.run(
        [os.path.join(BIN, command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
