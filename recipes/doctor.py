"""`kollm doctor`: is this machine ready for the demo (and for the GPU and cluster paths)? Each check says
what it found and, when something is wrong, the command that fixes it.

A `fail` is something the demo (`make demo`: the tiny preset on CPU) cannot do without; a `warn` is a
path this machine does not offer (no GPU, no Slurm, no Docker, an optional environment) that the
demo does not need. The exit status is 1 when anything failed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import warnings
from typing import Literal

from kollm.data.sources import repo_root

Status = Literal["ok", "warn", "fail"]

# environment folder -> (requirement files it is pinned by, needed by the demo?, how to make it)
ENVIRONMENTS = {
    ".venv": (["train.txt", "test.txt"], True, "make env"),
    ".venv-serve": (["serve.txt"], True, "make env"),
    ".venv-automodel": (["automodel.txt"], False, "make env-automodel"),
}
DEMO_DISK_GB = 5.0  # runs/tiny with its checkpoints, quantised copies and logs is ~1.5 GB; room to spare
DEMO_MEMORY_GB = 8.0


@dataclasses.dataclass
class Check:
    name: str
    status: Status
    found: str
    fix: str = ""


def _pins(files: list[str]) -> dict[str, str]:
    """name -> version for every `name==version` line (extras dropped, names normalised as pip does)."""
    pins = {}
    for name in files:
        with open(os.path.join(repo_root(), "requirements", name), encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*==\s*([^\s;#]+)", line)
                if m:
                    pins[_normal(m.group(1))] = m.group(3)
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(python: str) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions() if d.metadata['Name']}))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    return {_normal(k): v for k, v in json.loads(out).items()}


def check_environment(folder: str) -> Check:
    files, needed, make = ENVIRONMENTS[folder]
    python = os.path.join(repo_root(), folder, "bin", "python")
    miss: Status = "fail" if needed else "warn"
    if not os.path.exists(python):
        why = "needed by the demo" if needed else "only for finetune.backend=automodel and the tests"
        return Check(f"environment {folder}", miss, "absent", f"`{make}` ({why})")
    try:
        have = _installed(python)
    except (subprocess.SubprocessError, OSError, json.JSONDecodeError) as e:
        return Check(f"environment {folder}", miss, f"its python does not run: {e}", f"rm -rf {folder} && {make}")
    pins = _pins(files)
    # a local version label is the build, not the release: torch 2.13.0+cpu is the pinned 2.13.0
    wrong = [
        f"{n} {have.get(n, 'missing')} (pinned {v})"
        for n, v in sorted(pins.items())
        if have.get(n, "").split("+")[0] != v
    ]
    if wrong:
        shown = "; ".join(wrong[:4]) + (f"; and {len(wrong) - 4} more" if len(wrong) > 4 else "")
        return Check(f"environment {folder}", miss, shown, f"rm -rf {folder} && {make}")
    return Check(f"environment {folder}", "ok", f"{len(pins)} pins of requirements/{' + '.join(files)} match")


def check_python() -> Check:
    v = sys.version_info
    found = f"{platform.python_version()} ({sys.executable})"
    if v < (3, 11):
        return Check("python", "fail", found, "Python 3.11 (the CPU environments) or 3.12 (NGC containers)")
    return Check("python", "ok", found)


def check_torch() -> list[Check]:
    try:
        import torch
    except ImportError:
        return [Check("torch", "fail", "not importable", "`make env` (installs torch==2.13.0, the CPU wheel, first)")]
    out = [Check("torch", "ok", f"{torch.__version__}, {torch.get_num_threads()} CPU threads")]
    if not torch.cuda.is_available():
        out.append(
            Check(
                "CUDA GPUs",
                "warn",
                "none: the CPU presets (tiny, laptop, ci) run; small/1b/8b need GPUs",
                "a GPU node with containers/Dockerfile.train (run.executor=slurm or docker)",
            )
        )
        return out
    names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
    out.append(Check("CUDA GPUs", "ok", f"{torch.cuda.device_count()} x {', '.join(names)}, CUDA {torch.version.cuda}"))
    try:
        nccl = ".".join(str(x) for x in torch.cuda.nccl.version())
        out.append(Check("NCCL", "ok", nccl))
    except (RuntimeError, AttributeError) as e:
        out.append(
            Check("NCCL", "warn", f"not available ({e})", "a CUDA torch built with NCCL (the NGC PyTorch image)")
        )
    return out


def check_module(module: str, label: str, status_if_missing: Status, fix: str) -> Check:
    import importlib
    from importlib import metadata

    try:
        with warnings.catch_warnings():  # megatron-core warns on import about Transformer Engine on CPU
            warnings.simplefilter("ignore")
            importlib.import_module(module)
    except Exception as e:  # an import that fails for any reason is what the user must hear about
        return Check(label, status_if_missing, f"import {module} fails: {type(e).__name__}: {str(e)[:120]}", fix)
    dist = {"nemo_run": "nemo-run", "nemo_curator": "nemo-curator", "megatron.core": "megatron-core"}.get(
        module, module
    )
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        version = "installed"
    return Check(label, "ok", version)


def check_tritonserver() -> Check:
    """The binary the serve stage runs: kollm.serve.server.pytriton_dir() asked in the serve environment (nvidia-pytriton
    lives there only), else a system tritonserver (NGC's Triton images)."""
    binary = ""
    python = os.path.join(repo_root(), ".venv-serve", "bin", "python")
    if os.path.exists(python):
        code = "import os; from kollm.serve.server import pytriton_dir; print(os.path.join(pytriton_dir(), 'bin', 'tritonserver'))"
        p = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120, cwd=repo_root())
        if p.returncode == 0 and os.path.exists(p.stdout.strip()):
            binary = p.stdout.strip()
    binary = binary or shutil.which("tritonserver") or ""
    if not binary:
        return Check("tritonserver", "fail", "not found (nvidia-pytriton in .venv-serve bundles one)", "make env")
    if not os.access(binary, os.X_OK):
        return Check("tritonserver", "fail", f"{binary} is not executable", f"chmod +x {binary}")
    return Check("tritonserver", "ok", binary)


def check_slurm() -> Check:
    sinfo = shutil.which("sinfo")
    if not sinfo:
        return Check(
            "Slurm",
            "warn",
            "no sinfo on PATH: run.executor=slurm submits from a login node only",
            "run on the cluster's login node, or set tunnel: {kind: ssh, host: ...} in the cluster profile",
        )
    try:
        p = subprocess.run([sinfo, "-h", "-o", "%P %a %D"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return Check("Slurm", "warn", "sinfo did not answer in 15 s", "check slurmctld (scontrol ping)")
    if p.returncode:
        return Check(
            "Slurm",
            "warn",
            f"sinfo failed: {(p.stderr or p.stdout).strip()[:160]}",
            "check SLURM_CONF and slurmctld (scontrol ping)",
        )
    parts = [line.split()[0] for line in p.stdout.splitlines() if line.strip()]
    return Check("Slurm", "ok", f"partitions: {', '.join(parts) or 'none listed'}")


def check_docker() -> Check:
    docker = shutil.which("docker")
    if docker:
        try:
            p = subprocess.run(
                [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=15
            )
            if p.returncode == 0 and p.stdout.strip():
                return Check("Docker", "ok", f"engine {p.stdout.strip()}")
            why = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no answer"]
        except subprocess.TimeoutExpired:
            why = ["docker info did not answer in 15 s"]
        return Check(
            "Docker",
            "warn",
            f"{docker}, but no engine: {why[0][:160]}",
            "start the Docker daemon (or use Slurm + pyxis)",
        )
    return Check(
        "Docker",
        "warn",
        "no docker on PATH: run.executor=docker and building containers/ need it",
        "install Docker (+ the NVIDIA container toolkit for GPUs), or use Slurm + pyxis",
    )


def check_data(data_dir: str = "") -> Check:
    from kollm.core.errors import KollmError
    from kollm.data.sources import resolve_data_dir

    try:
        return Check("Korean data", "ok", resolve_data_dir(data_dir))
    except KollmError as e:
        return Check(
            "Korean data",
            "fail",
            str(e).split(";")[0],
            "`kollm data download`, or data.data_dir=PATH / "
            "$KOLLM_DATA_DIR pointing at a folder with NSMC, KLUE and korean-hate-speech",
        )


def check_disk(root: str) -> Check:
    probe = os.path.abspath(root)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    free = shutil.disk_usage(probe).free / 2**30
    found = f"{free:.1f} GiB free at {probe}"
    if free < DEMO_DISK_GB:
        return Check(
            "disk", "fail", found, f"free space (the demo needs ~{DEMO_DISK_GB:.0f} GiB) or run.root=ELSEWHERE"
        )
    return Check("disk", "ok", found)


def check_memory() -> Check:
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        return Check("memory", "warn", "unknown (no /proc/meminfo)")
    gb = kb / 2**20
    found = f"{gb:.1f} GiB, {os.cpu_count()} CPUs"
    if gb < DEMO_MEMORY_GB:
        return Check(
            "memory", "warn", found, f"the demo peaks near 3 GiB; below {DEMO_MEMORY_GB:.0f} GiB close other work"
        )
    return Check("memory", "ok", found)


def check_profile(explicit: str = "") -> Check:
    from kollm.core.errors import KollmError
    from recipes import cluster

    try:
        path = cluster.find(explicit)
        if not path:
            return Check(
                "cluster profile",
                "ok",
                "none (only Slurm runs use one: --profile FILE or ~/.config/kollm/cluster.yaml)",
            )
        n = len(cluster.overrides(path)) - 1
        return Check("cluster profile", "ok", f"{path}: {n} settings")
    except KollmError as e:
        return Check("cluster profile", "fail", str(e), "fix the file (keys: recipes/cluster.py) or move it away")


def run_checks(data_dir: str = "", root: str = "runs", profile: str = "") -> list[Check]:
    checks = [check_python(), *check_torch()]
    checks += [check_environment(env) for env in ENVIRONMENTS]
    checks.append(check_module("nemo_run", "NeMo Run", "fail", "make env"))
    checks.append(check_module("nemo_curator", "NeMo Curator", "fail", "make env"))
    checks.append(check_module("megatron.core", "Megatron Core", "warn", "make env (pretrain.backend=megatron only)"))
    checks += [
        check_tritonserver(),
        check_slurm(),
        check_docker(),
        check_data(data_dir),
        check_disk(root),
        check_memory(),
        check_profile(profile),
    ]
    return checks


def report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"[{c.status:>4}] {c.name:<{width}}  {c.found}")
        if c.fix and c.status != "ok":
            lines.append(f"       {'':<{width}}  fix: {c.fix}")
    failed = [c.name for c in checks if c.status == "fail"]
    lines.append("")
    lines.append(
        f"demo: cannot run ({len(failed)} failed: {', '.join(failed)})" if failed else "demo: ready (make demo)"
    )
    return "\n".join(lines)


def main(data_dir: str = "", root: str = "runs", profile: str = "", as_json: bool = False) -> int:
    checks = run_checks(data_dir, root, profile)
    if as_json:
        print(json.dumps([dataclasses.asdict(c) for c in checks], indent=1, ensure_ascii=False))
    else:
        print(report(checks))
    return 1 if any(c.status == "fail" for c in checks) else 0
