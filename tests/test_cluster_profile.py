"""A cluster profile (recipes/cluster.py) fills the Slurm fields of every recipe: account, partition, GPUs,
an image per environment, mounts and the tunnel, with the command line still winning; each mistake in it
is one line naming the file and the key."""

import glob
import json
import os

import pytest

from kollm.core.errors import KollmError
from recipes import cluster, executors, presets
from tests.conftest import run_cli

PROFILE = """\
account: kollm-acct
partition: gpu
gpus_per_node: 8
time_limit: "04:00:00"
images:
  train: registry.example.com/kollm-train:25.11
  serve: registry.example.com/kollm-serve:25.11
  nemo_rl: registry.example.com/nemo-rl:v0.7.0
  trtllm: registry.example.com/trtllm:26.03
mounts: [/lustre/datasets:/datasets]
tunnel: {kind: ssh, host: login.example.com, user: me, job_dir: /lustre/me/jobs}
"""


def _write(tmp_path, text, name="cluster.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_profile_reaches_the_sbatch_script_and_the_command_line_wins(tmp_path):
    profile = _write(
        tmp_path,
        PROFILE.replace(
            "tunnel: {kind: ssh, host: login.example.com, user: me, job_dir: /lustre/me/jobs}", "tunnel: {kind: local}"
        ),
    )
    home = tmp_path / "home"
    proc = run_cli(
        [
            "run",
            "pretrain",
            "preset=tiny",
            f"run.root={tmp_path}",
            "run.executor=slurm",
            "run.time_limit=00:30:00",
            "--profile",
            profile,
            "--dryrun",
        ],
        env={"NEMORUN_HOME": str(home)},
    )
    assert proc.returncode == 0, proc.stderr
    [script] = glob.glob(str(home / "**" / "*_sbatch.sh"), recursive=True)
    sbatch = open(script).read()
    for line in (
        "#SBATCH --account=kollm-acct",
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --time=00:30:00",  # the command line's time limit, not the profile's
        "--container-image registry.example.com/kollm-train:25.11",
        "/lustre/datasets:/datasets",
    ):
        assert line in sbatch, line


def test_every_environment_gets_its_image(tmp_path, monkeypatch):
    monkeypatch.setenv("KOLLM_PROFILE", _write(tmp_path, PROFILE))
    proc = run_cli(["config", "preset=1b"])
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    assert cfg["run"]["container_image"] == "registry.example.com/kollm-train:25.11"
    assert cfg["run"]["serve_image"] == "registry.example.com/kollm-serve:25.11"
    assert cfg["run"]["nemo_rl_image"] == "registry.example.com/nemo-rl:v0.7.0"
    assert cfg["trtllm"]["container"] == "registry.example.com/trtllm:26.03"
    assert (cfg["run"]["ssh_host"], cfg["run"]["ssh_user"], cfg["run"]["remote_job_dir"]) == (
        "login.example.com",
        "me",
        "/lustre/me/jobs",
    )
    assert cfg["run"]["profile"] == str(tmp_path / "cluster.yaml")

    built = presets.build(
        "1b", [*cluster.overrides(str(tmp_path / "cluster.yaml")), "run.executor=slurm", f"run.root={tmp_path}"]
    )
    slurm = executors.for_config(built)
    assert executors.for_stage(slurm, built, "train").container_image == "registry.example.com/kollm-train:25.11"
    assert executors.for_stage(slurm, built, "serve").container_image == "registry.example.com/kollm-serve:25.11"
    assert "/lustre/datasets:/datasets" in slurm.container_mounts
    nemo_rl = executors.gpu_container(built, built.run.nemo_rl_image, "")
    assert nemo_rl.container_image == "registry.example.com/nemo-rl:v0.7.0"
    assert "/lustre/datasets:/datasets" in nemo_rl.container_mounts


@pytest.mark.parametrize(
    "text, message",
    [
        (PROFILE.replace("partition: gpu", "partiton: gpu"), "unknown key 'partiton'; did you mean 'partition'?"),
        (PROFILE.replace("account: kollm-acct\n", ""), "missing required key 'account'"),
        (PROFILE.replace("gpus_per_node: 8", "gpus_per_node: eight"), "gpus_per_node must be a whole number"),
        (PROFILE.replace("  trtllm:", "  tensorrt:"), "unknown key 'images.tensorrt'"),
        (PROFILE.replace("/lustre/datasets:/datasets", "datasets"), "mounts[0] = 'datasets' is not SRC:DST"),
        (PROFILE.replace("host: login.example.com, ", ""), "missing required key 'tunnel.host'"),
        (PROFILE.replace("kind: ssh", "kind: telnet"), "tunnel.kind must be ssh or local"),
        ("account: a: b\npartition: gpu\n", "not valid YAML (line 1)"),
        ("- a list\n", "a cluster profile is a mapping"),
    ],
)
def test_a_wrong_or_missing_field_names_the_file_and_the_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(KollmError) as e:
        cluster.overrides(path)
    assert str(e.value).startswith(path + ": ") or str(e.value).startswith(f"cluster profile {path}")
    assert message in str(e.value)


def test_profile_mistakes_are_one_line_on_the_command_line(tmp_path):
    path = _write(tmp_path, PROFILE.replace("partition: gpu", "partiton: gpu"))
    proc = run_cli(["run", "pipeline", "run.executor=slurm", "--profile", path, "--dryrun"])
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {path}: unknown key 'partiton'; did you mean 'partition'?"
    proc = run_cli(["config", "--profile", str(tmp_path / "absent.yaml")])
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: cluster profile ")
    assert "absent.yaml (from --profile): no such file" in proc.stderr


def test_the_default_profile_is_read_from_the_config_home(tmp_path, monkeypatch):
    monkeypatch.delenv("KOLLM_PROFILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert cluster.find() == ""
    os.makedirs(tmp_path / "kollm")
    _write(tmp_path / "kollm", PROFILE)
    assert cluster.find() == str(tmp_path / "kollm" / "cluster.yaml")
    # it names cluster fields only: a local run that finds one keeps its executor and its run folder
    cfg = presets.build("ci", cluster.overrides(cluster.find()))
    assert cfg.run.executor == "local" and cfg.run.root == "runs" and cfg.run.partition == "gpu"
