"""`kollm doctor` on this machine: every check listed with what it found, the demo judged ready when the
environments, the data and the disk are there, and a clear failure with its fix when they are not."""

import json

from recipes import doctor
from tests.conftest import run_cli

NAMES = [
    "python",
    "torch",
    "CUDA GPUs",
    "environment .venv",
    "environment .venv-serve",
    "environment .venv-automodel",
    "NeMo Run",
    "NeMo Curator",
    "Megatron Core",
    "tritonserver",
    "Slurm",
    "Docker",
    "Korean data",
    "disk",
    "memory",
    "cluster profile",
]


def test_doctor_says_the_demo_can_run_here(data_dir, tmp_path):
    proc = run_cli(["doctor", "--data-dir", data_dir, "--root", str(tmp_path)], env={"KOLLM_PROFILE": ""})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for name in NAMES:
        assert any(line[7:].startswith(name) for line in lines), name
    assert lines[-1] == "demo: ready (make demo)"
    assert "[  ok] Korean data" in proc.stdout and data_dir in proc.stdout
    # no GPU on these machines: a warning with where to go, not a failure
    assert "[warn] CUDA GPUs" in proc.stdout and "fix: a GPU node" in proc.stdout


def test_doctor_fails_clearly_without_the_data(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    proc = run_cli(["doctor", "--data-dir", str(empty), "--json"], env={"KOLLM_PROFILE": ""})
    assert proc.returncode == 1
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert checks["Korean data"]["status"] == "fail"
    assert "lacks nsmc/reviews.jsonl.gz" in checks["Korean data"]["found"]
    assert "kollm data download" in checks["Korean data"]["fix"]
    assert not proc.stderr.strip() or "Traceback" not in proc.stderr


def test_doctor_names_a_broken_profile_and_pins_that_do_not_match(tmp_path, monkeypatch):
    bad = tmp_path / "cluster.yaml"
    bad.write_text("account: a\npartition: gpu\ngpus: 8\n")
    check = doctor.check_profile(str(bad))
    assert check.status == "fail" and f"{bad}: unknown key 'gpus'" in check.found
    # an environment whose installed version differs from its pin
    real = doctor._installed
    monkeypatch.setattr(doctor, "_installed", lambda python: {**real(python), "torch": "2.12.0+cpu"})
    check = doctor.check_environment(".venv")
    assert check.status == "fail" and check.found == "torch 2.12.0+cpu (pinned 2.13.0)"
    assert check.fix == "rm -rf .venv && make env"
    assert doctor.check_environment(".venv-automodel").status == "warn"  # not needed by the demo
    monkeypatch.undo()
    assert doctor.check_environment(".venv").status == "ok"
