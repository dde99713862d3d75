"""The pretrain recipe on a real Slurm cluster (one node on 127.0.0.1, with accounting), submitted
through NeMo Run's SlurmExecutor (LocalTunnel): a job that succeeds and leaves a checkpoint, one that
is signalled (SIGUSR1, as before its time limit), requeues itself and resumes, one that fails, one that
is cancelled. `tests/install_slurm.sh` (run by `make test`) installs Debian's Slurm."""

import json
import os
import subprocess
import sys
import time
import warnings

import nemo_run as run
import pytest

from recipes import executors, presets, stage_tasks
from tests import slurm_cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    missing = slurm_cluster.missing_programs()
    if missing:
        message = (
            f"!!! REAL SLURM TESTS SKIPPED: {', '.join(missing)} not installed; run "
            "`bash tests/install_slurm.sh` as root (make test does) !!!"
        )
        warnings.warn(message, stacklevel=2)
        print(message, file=sys.stderr)
        pytest.skip(message)
    with slurm_cluster.SlurmCluster() as c:
        yield c


@pytest.fixture
def slurm_env(cluster, monkeypatch, tmp_path):
    # what `kollm run` sets up: the cluster's config, this venv's python for the job
    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + cluster.env["PATH"])
    # LocalTunnel runs sbatch through invoke, which reads stdin; pytest's captured stdin refuses reads
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    return cluster


@pytest.fixture(scope="module")
def corpus(korean_tokenizer, nsmc_rows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm_corpus")
    korean_tokenizer.save_pretrained(folder / "tok")
    with open(folder / "corpus.jsonl", "w") as f:
        for r in nsmc_rows[:2000]:
            f.write(json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n")
    return folder


def _cfg(corpus, root, *overrides):
    return presets.standalone_pretraining(
        str(corpus / "corpus.jsonl"),
        str(corpus / "tok"),
        preset="ci",
        overrides=[
            f"run.root={root}",
            "run.executor=slurm",
            "run.partition=debug",
            "run.time_limit=00:10:00",
            "pretrain.steps=20",
            "pretrain.checkpoint_every=10",
            "pretrain.log_every=5",
            "pretrain.tokenize_workers=1",
            *overrides,
        ],
    )


def _submit(cfg, name: str, detach: bool):
    exp = run.Experiment(name, executor=executors.for_config(cfg, ["pretrain"]), log_level="WARN")
    with exp:
        exp.add(stage_tasks.task("pretrain", cfg, stage_tasks.write_config(cfg)), name="pretrain", tail_logs=False)
        exp.run(detach=detach)
    return exp


def _state(exp) -> str:
    return str(run.Experiment.from_id(exp._id).status(return_dict=True)["pretrain"]["status"]).split(".")[-1]


def _wait_for(exp, states, timeout=300) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = _state(exp)
        if state in states:
            return state
        time.sleep(2)
    raise AssertionError(f"job stuck in {state}")


def test_pretrain_job_succeeds_and_leaves_a_checkpoint(slurm_env, corpus, tmp_path):
    cfg = _cfg(corpus, tmp_path)
    exp = _submit(cfg, "kollm-slurm-ok", detach=False)
    assert _wait_for(exp, {"SUCCEEDED", "FAILED"}) == "SUCCEEDED", slurm_env.log("slurmctld.log")[-2000:]
    out = tmp_path / cfg.run_dir.split(os.sep)[-1] / "pretrain"
    assert sorted(os.listdir(out / "checkpoints")) == ["step_0000010", "step_0000020"]
    manifest = json.load(open(out / "manifest.json"))
    assert manifest["counts"]["steps"] == 20 and os.path.isdir(manifest["outputs"]["model_dir"])
    # Slurm's own accounting agrees
    jobs = subprocess.run(
        ["sacct", "-n", "-X", "-o", "JobName%40,State"], capture_output=True, text=True, env=slurm_env.env
    ).stdout
    assert "COMPLETED" in jobs


def _logs(exp) -> dict[str, str]:
    return {
        f: open(os.path.join(root, f)).read()
        for root, _, files in os.walk(exp._exp_dir)
        for f in files
        if f.endswith(".out")
    }


def test_a_signalled_job_checkpoints_requeues_and_resumes(slurm_env, corpus, tmp_path):
    """What `--signal=USR1@120` does before the time limit: the loop checkpoints and exits non-zero, NeMo
    Run's sbatch script requeues the job (run.requeues), the requeued job resumes from the checkpoint."""
    cfg = _cfg(corpus, tmp_path, "pretrain.steps=400", "pretrain.checkpoint_every=1000", "run.requeues=1")
    exp = _submit(cfg, "kollm-slurm-requeue", detach=True)
    out = tmp_path / cfg.run_dir.split(os.sep)[-1] / "pretrain"
    deadline, metrics = time.time() + 180, out / "metrics.jsonl"
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().strip()):
        time.sleep(0.5)  # training has logged a step
    # (Slurm holds a requeued job for cred_expire seconds, 30 in tests/slurm_cluster.py, before it may start again)
    [job_id] = subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=slurm_env.env
    ).stdout.split()
    subprocess.run(["scancel", "--signal=USR1", job_id], check=True, env=slurm_env.env)
    assert _wait_for(exp, {"SUCCEEDED", "FAILED"}, timeout=300) == "SUCCEEDED", _logs(exp)
    logs = "\n".join(_logs(exp).values())
    assert "stop requested (SIGTERM/SIGUSR1)" in logs and "resumed from" in logs, logs[-3000:]
    manifest = json.load(open(out / "manifest.json"))
    stopped_at = int(manifest["resumed_from"].rsplit("_", 1)[1])
    assert 0 < stopped_at < 400 and manifest["counts"]["steps"] == 400
    steps = [json.loads(line)["step"] for line in open(out / "metrics.jsonl")]
    assert steps == list(range(5, 401, 5))  # the resumed log continues the stopped one: no gap, no repeat


def test_a_failing_job_is_retried_then_reported_failed(slurm_env, corpus, tmp_path):
    cfg = _cfg(corpus, tmp_path, "run.requeues=1")
    cfg.pretrain.corpus = str(tmp_path / "no-such-corpus.jsonl")  # a user mistake found on the cluster
    exp = _submit(cfg, "kollm-slurm-fail", detach=False)
    assert _wait_for(exp, {"SUCCEEDED", "FAILED"}) == "FAILED"
    logs = _logs(exp)
    assert "no-such-corpus.jsonl: no such corpus file" in "".join(logs.values())
    # NeMo Run's script requeued it once (run.requeues=1): two attempts, each with its own log
    attempts = {name.rsplit("_", 1)[1] for name in logs if name.startswith("log-")}
    assert attempts == {"0.out", "1.out"}, sorted(logs)


def test_a_cancelled_job_is_reported_cancelled(slurm_env, corpus, tmp_path):
    cfg = _cfg(corpus, tmp_path, "pretrain.steps=100000")
    exp = _submit(cfg, "kollm-slurm-cancel", detach=True)
    assert _wait_for(exp, {"RUNNING"}, timeout=120) == "RUNNING"
    run.Experiment.from_id(exp._id).cancel("pretrain")
    assert _wait_for(exp, {"CANCELLED", "FAILED", "SUCCEEDED"}) == "CANCELLED"
    assert subprocess.run(["squeue", "-h"], capture_output=True, text=True, env=slurm_env.env).stdout.strip() == ""


def test_executor_for_a_multi_node_pretrain_uses_torchrun(tmp_path):
    cfg = presets.build(
        "ci",
        [
            f"run.root={tmp_path}",
            "run.executor=slurm",
            "run.nodes=2",
            "pretrain.nproc_per_node=4",
            "pretrain.batch_size=16",
        ],
    )
    ex = executors.for_config(cfg, ["pretrain"])
    assert (ex.nodes, ex.launcher) == (2, "torchrun")


def test_doctor_reaches_the_real_cluster(slurm_env):
    from recipes import doctor

    check = doctor.check_slurm()
    assert check.status == "ok" and check.found == f"partitions: {slurm_env.partition}*"
