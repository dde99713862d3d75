"""The house the stages live in: folders are layers, a stage is declared once and reads its inputs from
manifests, the curate stage resumes after a kill, the Triton model ships inside the package."""

import ast
import dataclasses
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
from kollm.core import KollmError
from stages import NAMES, STAGES, base
from tests.conftest import REPO, run_cli

NVIDIA_FACING = ("curator_pipelines", "triton_model_repo", "aligner", "trtllm")
CHECKED = ("kollm", "stages", "recipes", "course", *NVIDIA_FACING)


def written_rule() -> list[list[str]]:
    """The import rule's lines in docs/architecture.md, bottom first: each line's packages."""
    doc = open(os.path.join(REPO, "docs", "architecture.md"), encoding="utf-8").read()
    block = doc.split("## The layers and the import rule", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    return [line.split("  ", 1)[0].split() for line in reversed(block.strip().splitlines())]


def unit(module: str) -> str | None:
    """The package a module belongs to under the rule: `kollm.<package>` inside kollm, else its top folder."""
    parts = module.split(".")
    if parts[0] == "kollm":
        return ".".join(parts[:2]) if len(parts) > 1 else "kollm"
    if parts[0] == "course":  # the pieces written by hand are their own layer, below the library that trains one
        return "course.scratch" if len(parts) > 1 and parts[1] == "scratch" else "course"
    return parts[0] if parts[0] in CHECKED else None


def imports_of(path: str) -> set[str]:
    """Every module a file imports, module- or function-level, relative imports resolved; `from kollm import x`
    counts as `kollm.x`."""
    rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
    package = rel.rsplit(".", 1)[0] if not rel.endswith("__init__") else rel[: -len(".__init__")]
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found |= {f"{base}.{alias.name}" for alias in node.names} if base in ("kollm", "course") else {base}
    return found


def test_the_import_rule():
    """docs/architecture.md's rule holds for every import in every checked file, and no two packages import each
    other, directly or through others."""
    rule = written_rule()
    level = {name: i for i, line in enumerate(rule) for name in line}
    assert set(level) >= {"kollm.core", "kollm.config", "stages", "recipes", *NVIDIA_FACING}, rule
    packages = {
        "kollm." + name.removesuffix(".py")
        for name in os.listdir(os.path.join(REPO, "kollm"))
        if name.endswith(".py") or os.path.exists(os.path.join(REPO, "kollm", name, "__init__.py"))
    }
    packages -= {"kollm.__init__"}
    assert packages <= set(level), f"packages without a line in the import rule: {sorted(packages - set(level))}"
    edges: dict[str, set[str]] = {}
    for folder in CHECKED:
        files = glob.glob(os.path.join(REPO, folder, "**", "*.py"), recursive=True)
        assert files, folder
        for path in files:
            here = unit(os.path.relpath(path, REPO)[:-3].replace(os.sep, "."))
            for module in imports_of(path):
                there = unit(module)
                if there in (None, here) or here == "kollm":
                    continue
                edges.setdefault(here, set()).add(there)
                assert there in level and level[there] < level[here], (
                    f"{os.path.relpath(path, REPO)} imports {module}: {here} may import only what is below it in "
                    "docs/architecture.md's import rule"
                )

    # the order above already rules cycles out; this says which packages form one if the order is ever loosened
    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in edges.get(start, ()))

    assert not [p for p in edges if reaches(p, p)]


def test_stages_use_only_the_packages_public_apis():
    """A stage is glue: it imports a package's public API (the names its `__init__` lists), never a module inside it,
    so a package can be rearranged without touching the stages."""
    import importlib

    for path in glob.glob(os.path.join(REPO, "stages", "*.py")):
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Import):
                assert not [a.name for a in node.names if a.name.startswith("kollm")], path
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("kollm"):
                continue
            where = f"{os.path.relpath(path, REPO)}:{node.lineno}"
            assert node.module == "kollm.config" or node.module.count(".") == 1, f"{where}: from {node.module} import"
            package = importlib.import_module(node.module)
            public = set(getattr(package, "__all__", ())) | set(dir(package) if node.module != "kollm.config" else ())
            for alias in node.names:
                assert alias.name in public or node.module == "kollm.config", (
                    f"{where}: {alias.name} is not in {node.module}'s public API"
                )


def test_every_public_name_resolves_and_config_stays_light():
    """Each package's `__init__` lists names that exist (a lazy API would otherwise fail only when used), and
    `import kollm.config`, which runs every package's `__init__`, loads neither torch nor transformers."""
    import importlib

    code = "import sys, kollm.config; print(sorted({'torch', 'transformers', 'trl'} & set(sys.modules)))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )
    for name in sorted(os.listdir(os.path.join(REPO, "kollm"))):
        if os.path.exists(os.path.join(REPO, "kollm", name, "__init__.py")):
            package = importlib.import_module(f"kollm.{name}")
            assert package.__doc__, name
            for public in {*getattr(package, "__all__", ()), *dir(package)}:
                assert getattr(package, public) is not None, f"kollm.{name}.{public}"


def test_declarations_are_consistent():
    assert len(set(NAMES)) == len(NAMES) and not STAGES[0].upstream
    for i, stage in enumerate(STAGES):
        assert set(stage.upstream) <= set(NAMES[:i]), stage.name  # reads only stages that ran before it
        assert stage.outputs.names() and stage.about, stage.name
        assert all(hasattr(PipelineConfig(), section) for section in stage.config_sections), stage.name
        for dotted in stage.config_reads:  # another section's field, named as it is spelled
            section, field = dotted.split(".")
            assert section not in stage.config_sections and hasattr(getattr(PipelineConfig(), section), field)


def test_run_help_lists_the_declared_stages():
    proc = run_cli(["run", "--help"])
    assert proc.returncode == 0
    for stage in STAGES:
        line = next(line for line in proc.stdout.splitlines() if line.strip().startswith(stage.name + " "))
        assert stage.about in line
    assert "[serving environment]" in proc.stdout


def _complete(cfg, stage: str, outputs: dict, fingerprint: str = "f") -> None:
    os.makedirs(base.stage_dir(cfg, stage), exist_ok=True)
    manifest = {"status": "complete", "fingerprint": fingerprint, "outputs": outputs}
    json.dump(manifest, open(base.manifest_path(cfg, stage), "w"))


def test_a_stage_reads_only_what_it_declares(tmp_path):
    """Upstream outputs come back as the producing stage's typed record, read by attribute; a stage not declared
    upstream cannot be read, and a manifest from a kollm that recorded other outputs is one line saying what to
    re-run."""
    from recipes import presets
    from stages.data import DataOutputs

    cfg = presets.build("ci", [f"run.root={tmp_path}"])
    recorded = {name: f"{name}.jsonl" for name in DataOutputs.names()}
    _complete(cfg, "data", recorded)
    token = base.running.set(STAGES[NAMES.index("evaluate")])
    try:
        data = base.inputs(cfg, DataOutputs)  # declared: the recorded paths
        assert data.nsmc_test == "nsmc_test.jsonl" and data.paths() == recorded
    finally:
        base.running.reset(token)
    token = base.running.set(STAGES[NAMES.index("tokenizer")])
    try:
        with pytest.raises(RuntimeError, match="does not list"):
            base.inputs(cfg, DataOutputs)  # the tokenizer stage reads curate, not data
    finally:
        base.running.reset(token)
    _complete(cfg, "data", {"nsmc_test": "x.jsonl"})  # a kollm whose data stage recorded less
    with pytest.raises(KollmError, match=r"run the data stage again \(run.force=true\)"):
        base.outputs_of(cfg.run_dir, DataOutputs)


def test_a_stage_sees_its_own_config_and_what_it_declared(tmp_path):
    """A running stage reads its own sections, the run's name and place, and the other sections' fields it declared
    (`config_reads`); anything else stops it at once. The declared fields enter its fingerprint, undeclared ones do
    not."""
    from recipes import presets
    from stages.runner import fingerprint

    cfg = presets.build("ci", [f"run.root={tmp_path}"])
    evaluate = STAGES[NAMES.index("evaluate")]
    seen = base.view(cfg, evaluate)
    assert seen.evaluate is cfg.evaluate and seen.run_dir == cfg.run_dir and seen.preset == "ci"
    assert seen.finetune.max_len == cfg.finetune.max_len  # declared in evaluate's config_reads
    with pytest.raises(RuntimeError, match=r"reads finetune.lr, which its declaration's config_reads"):
        print(seen.finetune.lr)
    with pytest.raises(RuntimeError, match="reads config section 'align'"):
        print(seen.align)
    with pytest.raises(RuntimeError, match="reads config section 'evaluate'"):
        print(base.view(cfg, STAGES[NAMES.index("finetune")]).evaluate)

    for stage in evaluate.upstream:  # upstream fingerprints held fixed: only the config can move evaluate's
        _complete(cfg, stage, {}, "f" + stage)
    before = fingerprint(cfg, evaluate)
    cfg.finetune.lr *= 2  # not read by evaluate (it moves the finetune stage's fingerprint, and so evaluate's)
    assert fingerprint(cfg, evaluate) == before
    cfg.finetune.max_len += 1  # read by evaluate
    assert fingerprint(cfg, evaluate) != before


def test_launch_traits_are_declared_on_the_stage_and_read_by_the_executors(monkeypatch, tmp_path):
    """torchrun, several nodes and requeueing come from a stage's `Launch`, not from its name: give another stage
    pretraining's traits and the executors launch it so."""
    import stages as declared
    from recipes import executors, presets

    cfg = presets.build("ci", [f"run.root={tmp_path}", "pretrain.nproc_per_node=2"])
    assert executors.torchrun_ranks(cfg, ["pretrain"]) == 2
    assert executors.torchrun_ranks(cfg, None) == 0  # the whole pipeline: one process a stage
    assert executors.torchrun_ranks(cfg, ["finetune"]) == 0
    assert executors.local(cfg, ["pretrain"]).launcher == "torchrun"
    two_nodes = presets.build("ci", [f"run.root={tmp_path}", "run.nodes=2", "run.executor=slurm"])
    with pytest.raises(KollmError, match="run.nodes > 1"):
        executors.slurm(two_nodes, ["finetune"])
    swapped = tuple(
        dataclasses.replace(s, launch=declared.by_name("pretrain").launch) if s.name == "finetune" else s
        for s in declared.STAGES
    )
    monkeypatch.setattr(declared, "STAGES", swapped)
    assert executors.torchrun_ranks(cfg, ["finetune"]) == 2
    job = executors.slurm(two_nodes, ["finetune"])
    assert job.signal == "USR1@120" and job.retries == two_nodes.run.requeues


def test_the_model_is_a_declared_role(tmp_path):
    """Export, quantize and serve ask for "the model", which the align stage declares; a stage that declared the
    role after it would be what they ship."""
    from recipes import presets

    cfg = presets.build("ci", [f"run.root={tmp_path}"])
    from stages.align import AlignOutputs

    _complete(cfg, "align", {name: "policy" if name == "model_dir" else name for name in AlignOutputs.names()})
    for consumer in ("evaluate", "export", "quantize", "serve"):
        token = base.running.set(STAGES[NAMES.index(consumer)])
        try:
            assert base.the(cfg, "model") == "policy"
        finally:
            base.running.reset(token)
    assert base.model_of_run(cfg.run_dir) == "policy"

    @dataclasses.dataclass(frozen=True)
    class Merged(base.Outputs):
        merged_dir: str

    merge = base.Stage("merge", lambda cfg, out: {}, outputs=Merged, roles={"model": "merged_dir"})
    assert base.role_of([STAGES[NAMES.index("align")], merge], "model") == ("merge", "merged_dir")
    with pytest.raises(KollmError, match="its align stage has not completed"):
        base.model_of_run(str(tmp_path / "elsewhere"))


def test_triton_model_ships_inside_the_package(tmp_path):
    """A non-editable install (a wheel) carries the python-backend model the repository writer copies."""
    source = tmp_path / "src"  # a copy: building in the checkout would leave build/ there
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".*", "runs", "build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = glob.glob(str(tmp_path / "kollm-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "triton_model_repo/kollm_llm/1/model.py" in names
    assert {"kollm/evaluate/lm_eval_tasks/utils.py", "kollm/evaluate/lm_eval_tasks/kollm_nsmc.yaml"} <= set(
        names
    )  # lm-eval reads files
    assert {
        "kollm/pretrain/frame.py",
        "stages/__init__.py",
        "recipes/cli.py",
        "curator_pipelines/korean_pipeline.py",
    } <= set(names)


CURATE = ["preset=ci", "data.max_reviews=10000", "data.max_comments=1000", "curate.shard_docs=1000", "curate.workers=1"]


def _stage(name, root, popen=False):
    args = ["stage", name, *CURATE, f"run.root={root}"]
    if popen:  # its own process group: SIGKILL reaches everything it started
        return subprocess.Popen(
            [sys.executable, "-m", "recipes.cli", *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
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
            json.dump(
                {"status": "complete", "fingerprint": "f" + stage, "outputs": {"model_dir": str(tmp_path)}},
                open(base.manifest_path(cfg, stage), "w"),
            )
        before = open(base.manifest_path(cfg, "serve")).read()
        proc = run_cli(
            ["stage", "serve", "preset=ci", f"run.root={tmp_path}", "run.force=true", f"serve.http_port={port}"],
            timeout=300,
        )
        assert proc.returncode != 0
        assert proc.stderr.strip().splitlines() == [
            f"error: [serve] port {port} on 127.0.0.1 is in use (another server?): stop it, or choose another with "
            f"serve.http_port=PORT (0 = any free port)"
        ], proc.stderr
        assert open(base.manifest_path(cfg, "serve")).read() == before
        assert os.listdir(base.stage_dir(cfg, "serve")) == ["manifest.json"]  # nothing written either


def test_adding_a_stage_is_one_module_and_one_declaration(monkeypatch, tmp_path, tiny_model_dir):
    """docs/architecture.md's example stage, as written there: its module and its one `Stage(...)` line are all it
    takes for the runner to run it on the model role, record its typed outputs and read them back."""
    import importlib.util

    import stages as declared
    from recipes import presets
    from stages.align import AlignOutputs
    from stages.runner import run_stage

    doc = open(os.path.join(REPO, "docs", "architecture.md"), encoding="utf-8").read()
    section = doc.split("## How to add a stage", 1)[1].split("\n## ", 1)[0]
    module_code, declaration = (block.split("```", 1)[0] for block in section.split("```python\n")[1:3])
    (tmp_path / "samples.py").write_text(module_code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("samples", tmp_path / "samples.py")
    samples = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "samples", samples)  # as an import would (dataclasses look it up)
    spec.loader.exec_module(samples)
    stage = eval(declaration, {"Stage": base.Stage, "samples": samples})
    monkeypatch.setattr(declared, "STAGES", (*declared.STAGES, stage))

    cfg = presets.build("ci", [f"run.root={tmp_path / 'runs'}", "evaluate.max_new_tokens=8"])
    _complete(cfg, "align", {name: tiny_model_dir if name == "model_dir" else "" for name in AlignOutputs.names()})
    manifest = run_stage(stage, cfg)
    assert manifest["counts"] == {"answers": len(samples.QUESTIONS)}
    answers = base.outputs_of(cfg.run_dir, samples.SamplesOutputs).answers
    rows = [json.loads(line) for line in open(answers, encoding="utf-8")]
    assert [r["question"] for r in rows] == samples.QUESTIONS and all(isinstance(r["answer"], str) for r in rows)
    assert run_stage(stage, cfg)["fingerprint"] == manifest["fingerprint"]  # current: skipped
    cfg.evaluate.max_new_tokens = 4  # a declared read: the stage runs again
    assert run_stage(stage, cfg)["fingerprint"] != manifest["fingerprint"]
