"""The house the stages live in: folders are layers, a stage is declared once and reads its inputs from
manifests, the curate stage resumes after a kill, the Triton model ships inside the package."""

import ast
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from kollm.config import PipelineConfig
from stages import NAMES, STAGES, base
from tests.conftest import REPO, run_cli

# folder -> the folders its code may import; the tree's layers, bottom to top (docs/architecture.md)
LAYERS = {
    "kollm": set(),
    "curator_pipelines": {"kollm"},
    "triton_model_repo": {"kollm"},
    "stages": {"kollm", "curator_pipelines", "triton_model_repo"},
    "recipes": {"kollm", "stages"},
}


def _imported_packages(path: str) -> set[str]:
    tree = ast.parse(open(path, encoding="utf-8").read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_folders_are_layers_with_no_cycles():
    for folder, allowed in LAYERS.items():
        files = glob.glob(os.path.join(REPO, folder, "**", "*.py"), recursive=True)
        assert files, folder
        for path in files:
            wrong = (_imported_packages(path) & set(LAYERS)) - allowed - {folder}
            assert not wrong, f"{os.path.relpath(path, REPO)} imports {sorted(wrong)}; {folder}/ may import {allowed}"


def test_declarations_are_consistent():
    assert len(set(NAMES)) == len(NAMES) and not STAGES[0].upstream
    for i, stage in enumerate(STAGES):
        assert set(stage.upstream) <= set(NAMES[:i]), stage.name  # reads only stages that ran before it
        assert stage.outputs and stage.about, stage.name
        assert all(hasattr(PipelineConfig(), section) for section in stage.config_sections), stage.name


def test_run_help_lists_the_declared_stages():
    proc = run_cli(["run", "--help"])
    assert proc.returncode == 0
    for stage in STAGES:
        line = next(line for line in proc.stdout.splitlines() if line.strip().startswith(stage.name + " "))
        assert stage.about in line
    assert "[serving environment]" in proc.stdout


def test_a_stage_reads_only_what_it_declares(tmp_path):
    from recipes import presets

    cfg = presets.build("ci", [f"run.root={tmp_path}"])
    os.makedirs(base.stage_dir(cfg, "data"))
    json.dump({"status": "complete", "outputs": {"nsmc_test": "x.jsonl"}},
              open(base.manifest_path(cfg, "data"), "w"))
    token = base.running.set(STAGES[NAMES.index("evaluate")])
    try:
        assert base.inputs(cfg, "data") == {"nsmc_test": "x.jsonl"}  # declared: the recorded path
    finally:
        base.running.reset(token)
    token = base.running.set(STAGES[NAMES.index("tokenizer")])
    try:
        with pytest.raises(RuntimeError, match="does not list"):
            base.inputs(cfg, "data")  # the tokenizer stage reads curate, not data
    finally:
        base.running.reset(token)


def test_triton_model_ships_inside_the_package(tmp_path):
    """A non-editable install (a wheel) carries the python-backend model the repository writer copies."""
    source = tmp_path / "src"  # a copy: building in the checkout would leave build/ there
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".*", "runs", "build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, timeout=300)
    [wheel] = glob.glob(str(tmp_path / "kollm-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "triton_model_repo/kollm_llm/1/model.py" in names
    assert {"kollm/lm_eval_tasks/utils.py", "kollm/lm_eval_tasks/kollm_nsmc.yaml"} <= set(names)  # lm-eval reads files
    assert {"kollm/training.py", "stages/__init__.py", "recipes/cli.py", "curator_pipelines/korean.py"} <= set(names)


CURATE = ["preset=ci", "data.max_reviews=10000", "data.max_comments=1000", "curate.shard_docs=1000",
          "curate.workers=1"]


def _stage(name, root, popen=False):
    args = ["stage", name, *CURATE, f"run.root={root}"]
    if popen:  # its own process group: SIGKILL reaches everything it started
        return subprocess.Popen([sys.executable, "-m", "recipes.cli", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    proc = run_cli(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_curate_stage_resumes_after_sigkill(data_dir, tmp_path):
    """`kollm stage curate` killed after some shards finished: the rerun keeps those shards and the
    toxicity model (nothing is redone) and the result equals an uninterrupted run."""
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for root in (killed, clean):
        _stage("data", root)
    proc = _stage("curate", killed, popen=True)
    shards = killed / "ci" / "curate" / "curation" / "work" / "shards"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(glob.glob(str(shards / "*.json"))) < 3:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: os.stat(p).st_mtime_ns for p in glob.glob(str(shards / "*.json"))}
    toxicity_model = killed / "ci" / "curate" / "toxicity.npz"
    model_written = os.stat(toxicity_model).st_mtime_ns
    assert len(finished) >= 3 and not (killed / "ci" / "curate" / "manifest.json").exists()

    resumed = _stage("curate", killed)
    total = len(glob.glob(str(shards / "*.json")))
    assert len(finished) < total, "the kill came after every shard had finished: nothing was resumed"
    assert {p: os.stat(p).st_mtime_ns for p in finished} == finished  # finished shards were not redone
    assert os.stat(toxicity_model).st_mtime_ns == model_written  # the same model, not retrained
    assert "filter" in resumed.stderr  # the rest was filtered

    _stage("curate", clean)
    for name in ("corpus.jsonl", "heldout.jsonl"):
        assert (killed / "ci" / "curate" / name).read_bytes() == (clean / "ci" / "curate" / name).read_bytes()
    counts = [json.load(open(root / "ci" / "curate" / "manifest.json"))["counts"] for root in (killed, clean)]
    assert counts[0] == counts[1] and counts[0]["corpus"]["kept"] > 0


def test_serve_rerun_with_busy_ports_keeps_its_manifest(tmp_path):
    """`kollm stage serve ... run.force=true` while a server holds the configured port: one line, and the last
    complete manifest (what `kollm chat --run` reads) is still there, unchanged."""
    import socket

    from recipes import presets

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = presets.build("ci", [f"run.root={tmp_path}"])
        for stage in ("align", "serve"):
            os.makedirs(base.stage_dir(cfg, stage))
            json.dump({"status": "complete", "fingerprint": "f" + stage, "outputs": {"model_dir": str(tmp_path)}},
                      open(base.manifest_path(cfg, stage), "w"))
        before = open(base.manifest_path(cfg, "serve")).read()
        proc = run_cli(["stage", "serve", "preset=ci", f"run.root={tmp_path}", "run.force=true",
                        f"serve.http_port={port}"], timeout=300)
        assert proc.returncode != 0
        assert proc.stderr.strip().splitlines() == [
            f"error: [serve] port {port} on 127.0.0.1 is in use (another server?): stop it, or choose another with "
            f"serve.http_port=PORT (0 = any free port)"], proc.stderr
        assert open(base.manifest_path(cfg, "serve")).read() == before
        assert os.listdir(base.stage_dir(cfg, "serve")) == ["manifest.json"]  # nothing written either
