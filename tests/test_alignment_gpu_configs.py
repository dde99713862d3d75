"""The GPU alignment path, up to the GPU: NeMo-RL configs and commands, NeMo Run launch (dry run),
and the legacy NeMo-Aligner files. NeMo-RL itself (Python 3.13, transformers < 5.9) cannot be
installed here; the real runs are the `gpu` test at the end."""

import json
import os
import shlex

import pytest
import yaml

from aligner import nemo_aligner, nemo_rl
from kollm.core.io import read_jsonl, write_jsonl
from recipes import presets

SNAPSHOT = os.path.join(os.path.dirname(__file__), "snapshots", "nemo_rl_v0.7.0_config_keys.json")


def _messages(text, role):
    return [{"role": role, "content": text}]


@pytest.fixture(scope="module")
def stage_files(tmp_path_factory):
    """The align stage's four JSONL files, in its own format (a few hand-written rows)."""
    d = tmp_path_factory.mktemp("align")
    files = {k: str(d / f"{k}.jsonl") for k in ("sft", "pairs", "eval_pairs", "rl_prompts")}
    write_jsonl(
        files["sft"],
        [
            {
                "prompt": _messages("긍정적인 리뷰를 써 주세요.", "user"),
                "completion": _messages("정말 재밌게 봤어요", "assistant"),
                "kind": "review_sentiment",
                "source": "nsmc",
            }
        ]
        * 20,
    )
    pair = {
        "prompt": _messages("부정적인 리뷰를 써 주세요.", "user"),
        "chosen": _messages("시간 아까움", "assistant"),
        "rejected": _messages("최고의 영화", "assistant"),
        "kind": "review_sentiment",
        "source": "nsmc",
    }
    write_jsonl(files["pairs"], [pair] * 30)
    write_jsonl(files["eval_pairs"], [pair] * 5)
    write_jsonl(
        files["rl_prompts"],
        [
            {
                "prompt": _messages("긍정적인 리뷰를 써 주세요.", "user"),
                "requested": 1,
                "kind": "review_sentiment",
                "source": "handwritten",
            }
        ]
        * 12,
    )
    return files


@pytest.fixture(scope="module")
def written(stage_files, tiny_model_dir, tmp_path_factory):
    cfg = presets.build("1b", [f"run.root={tmp_path_factory.mktemp('runs')}"])
    # where the align stage writes it: inside the run folder, which the containers mount
    out = nemo_rl.write(cfg, tiny_model_dir, stage_files, os.path.join(cfg.run.root, "1b", "align", "nemo_rl"))
    return cfg, out, {s: yaml.safe_load(open(os.path.join(out, f"{s}.yaml"))) for s in nemo_rl.STEPS}


def _get(d, dotted):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return KeyError
        d = d[part]
    return d


def _flat(d, prefix=""):
    for k, v in d.items():
        yield prefix + k
        if isinstance(v, dict):
            yield from _flat(v, prefix + k + ".")


def test_every_hub_name_the_upstream_configs_hold_is_overridden_with_a_local_one(written, tiny_model_dir):
    cfg, out, configs = written
    upstream = json.load(open(SNAPSHOT))["steps"]
    for step, body in configs.items():
        assert body["defaults"] == f"/opt/nemo-rl/examples/configs/{nemo_rl.UPSTREAM[step]}"
        for key, hub_value in upstream[step]["hub_values"].items():
            ours = _get(body, key)
            if key.startswith("data.validation.") and body["data"].get("validation", {}) is None:
                continue  # validation replaced as a whole (split off the training file)
            assert ours is not KeyError, f"{step}: {key} keeps the upstream {hub_value!r}"
            if key.endswith("dataset_name"):
                assert ours in ("BinaryPreferenceDataset", "ResponseDataset"), (step, key, ours)
            else:
                assert ours.startswith(os.path.abspath(os.path.dirname(out))) or ours == tiny_model_dir, (
                    step,
                    key,
                    ours,
                )
        for key in nemo_rl.HUB_KEYS[step]:
            assert _get(body, key) is not KeyError, (step, key)
        # a local JSONL has one split, "train": any inherited split other than that would fail to load
        for part in ("train", "validation"):
            if isinstance(body["data"].get(part), dict):
                assert body["data"][part]["split"] == "train"
                assert os.path.isfile(body["data"][part]["data_path"])


def test_every_key_we_set_exists_in_the_config_it_inherits(written):
    upstream = json.load(open(SNAPSHOT))["steps"]
    for step, body in written[2].items():
        known = set(upstream[step]["keys"])
        dataset_args = ("data.train.", "data.validation.")  # a dataset class's own arguments
        unknown = [k for k in _flat(body) if k != "defaults" and k not in known and not k.startswith(dataset_args)]
        assert not unknown, f"{step}: keys NeMo-RL v0.7.0's {nemo_rl.UPSTREAM[step]} does not have: {unknown}"


def test_the_configs_carry_the_align_settings_and_chain_the_steps(written, tiny_model_dir):
    cfg, out, c = written
    a = cfg.align
    assert c["sft"]["policy"]["model_name"] == c["sft"]["policy"]["tokenizer"]["name"] == tiny_model_dir
    assert c["dpo"]["policy"]["model_name"] == c["reward"]["policy"]["model_name"] == os.path.join(out, "hf", "sft")
    assert c["grpo"]["policy"]["model_name"] == os.path.join(out, "hf", "dpo")
    assert c["grpo"]["env"]["reward_model"]["model_name"] == os.path.join(out, "hf", "reward")
    assert c["dpo"]["dpo"]["reference_policy_kl_penalty"] == a.dpo_beta
    assert c["dpo"]["dpo"]["sft_loss_weight"] == a.dpo_sft_weight
    assert c["dpo"]["dpo"]["max_num_steps"] == -(-30 // a.batch_size)
    assert c["reward"]["policy"]["reward_model_cfg"] == {"enabled": True, "reward_model_type": "bradley_terry"}
    g = c["grpo"]["grpo"]
    assert g["num_prompts_per_step"] * g["num_generations_per_prompt"] == a.batch_size
    assert c["grpo"]["loss_fn"]["reference_policy_kl_penalty"] == a.grpo_beta
    assert c["grpo"]["data"]["default"]["env_name"] == "reward_model"
    assert c["sft"]["cluster"]["gpus_per_node"] == cfg.run.gpus_per_node == 8
    # the data, in NeMo-RL's formats
    pair = next(read_jsonl(c["dpo"]["data"]["train"]["data_path"]))
    assert pair == {"prompt": "부정적인 리뷰를 써 주세요.", "chosen": "시간 아까움", "rejected": "최고의 영화"}
    sft_row = next(read_jsonl(c["sft"]["data"]["train"]["data_path"]))
    assert [m["role"] for m in sft_row["messages"]] == ["user", "assistant"]
    assert next(read_jsonl(c["grpo"]["data"]["train"]["data_path"])) == {
        "input": "긍정적인 리뷰를 써 주세요.",
        "output": "",
    }


def test_run_all_runs_each_step_then_converts_it_for_the_next(written):
    cfg, out, _ = written
    lines = open(os.path.join(out, "run_all.sh")).read().splitlines()
    runs = [shlex.split(x) for x in lines if x.startswith("uv run examples/run_")]
    assert [r[2] for r in runs] == [nemo_rl.SCRIPTS[s] for s in nemo_rl.STEPS]
    assert all(r[3] == "--config" and os.path.isfile(r[4]) for r in runs)
    converts = [x for x in lines if "convert_dcp_to_hf.py" in x]
    assert len(converts) == 4 and all(f"{out}/hf/" in x for x in converts)
    assert "cd /opt/nemo-rl" in lines


def test_sbatch_through_ray_sub_for_several_nodes(written):
    cfg, out, _ = written
    cfg.run.nodes, cfg.run.account, cfg.run.partition = 2, "acct", "gpu"
    cmd = nemo_rl.sbatch_command(cfg, "grpo", os.path.join(out, "grpo.yaml"))
    env, _, sbatch = cmd.partition(" sbatch ")
    words = shlex.split(env)
    assert words[0] == "COMMAND=" + shlex.join(nemo_rl.command("grpo", os.path.join(out, "grpo.yaml")))
    assert f"CONTAINER={nemo_rl.CONTAINER}" in words
    assert sbatch.split() == [
        "--nodes=2",
        "--gres=gpu:8",
        f"--time={cfg.run.time_limit}",
        "--job-name=kollm-nemo-rl-grpo",
        "--account=acct",
        "--partition=gpu",
        "ray.sub",
    ]
    cfg.run.nodes = 1


def test_kollm_nemo_rl_dry_runs_in_the_nemo_rl_container(written, tmp_path):
    """`kollm nemo-rl dpo` reads the run's align manifest and launches NeMo-RL's command under NeMo Run."""
    import glob

    from stages.align import AlignOutputs
    from tests.conftest import run_cli

    cfg, out, _ = written
    run_dir = os.path.join(cfg.run.root, "1b")
    os.makedirs(os.path.join(run_dir, "align"), exist_ok=True)
    with open(os.path.join(run_dir, "align", "manifest.json"), "w") as f:
        outputs = {name: out if name == "nemo_rl_dir" else "" for name in AlignOutputs.names()}
        json.dump({"stage": "align", "status": "complete", "outputs": outputs}, f)
    home = tmp_path / "nemo_run_home"
    base = ["nemo-rl", "dpo", "preset=1b", f"run.root={cfg.run.root}"]
    proc = run_cli(base + ["run.executor=docker", "--dryrun"], env={"NEMORUN_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_cli(
        base + ["run.executor=slurm", "run.account=acct", "run.partition=gpu", "--dryrun"],
        env={"NEMORUN_HOME": str(home)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    scripts = glob.glob(str(home / "**" / "*_sbatch.sh"), recursive=True)
    assert scripts, proc.stdout[-2000:]
    text = open(scripts[0]).read()
    assert "#SBATCH --account=acct" in text and "#SBATCH --gpus-per-node=8" in text
    assert f"--container-image {nemo_rl.CONTAINER}" in text
    assert f"--container-mounts {cfg.run.root}:{cfg.run.root}" in text  # the configs and data are in the run
    (task_script,) = glob.glob(os.path.join(os.path.dirname(scripts[0]), "**", "nemo-rl-dpo.sh"), recursive=True)
    task = open(task_script).read()
    assert f"cd /opt/nemo-rl && uv run examples/run_dpo.py --config {out}/dpo.yaml" in task
    proc = run_cli(base + ["run.executor=slurm", "run.nodes=2", "--dryrun"], env={"NEMORUN_HOME": str(home)})
    assert proc.returncode == 0 and "ray.sub" in proc.stdout and "--nodes=2" in proc.stdout, proc.stderr[-2000:]
    bad = run_cli(["nemo-rl", "ppo", "preset=1b", f"run.root={cfg.run.root}", "--dryrun"])
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "choose one of: sft, dpo, reward, grpo" in bad.stderr
    missing = run_cli(["nemo-rl", "dpo", "preset=1b", f"run.root={tmp_path}", "--dryrun"])
    assert missing.returncode == 2 and "align" in missing.stderr, missing.stderr


def test_nemo_aligner_legacy_rows_and_command(stage_files, tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    cfg = presets.build("1b", [])
    pairs = list(read_jsonl(stage_files["pairs"]))
    out = nemo_aligner.write(cfg, pairs, pairs[:3], tiny_model_dir, str(tmp_path))
    rows = list(read_jsonl(os.path.join(out, "dpo_train.jsonl")))
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert set(rows[0]) == {"prompt", "chosen_response", "rejected_response"}
    assert rows[0]["prompt"] == tok.apply_chat_template(pairs[0]["prompt"], tokenize=False, add_generation_prompt=True)
    assert rows[0]["chosen_response"] == "시간 아까움" + tok.eos_token
    script = open(os.path.join(out, "train_gpt_dpo.sh")).read()
    assert "LEGACY" in script and "deprecated" in script
    command = shlex.split(script.splitlines()[-1])
    assert command[:3] == ["python", "-u", "examples/nlp/gpt/train_gpt_dpo.py"]
    assert f"++model.dpo.ref_policy_kl_penalty={cfg.align.dpo_beta}" in command
    assert any(c.startswith("model.data.data_prefix={train: [") and out in c for c in command)


@pytest.mark.gpu
def test_nemo_rl_dpo_runs_in_its_container(written, tiny_model_dir):
    """On a GPU machine with Docker and the NeMo-RL image: the DPO step for real (a few steps)."""
    import shutil
    import subprocess

    have_image = (
        shutil.which("docker")
        and subprocess.run(["docker", "image", "inspect", nemo_rl.CONTAINER], capture_output=True).returncode == 0
    )
    if not (shutil.which("nvidia-smi") and have_image):
        pytest.skip(f"needs a GPU, docker and the {nemo_rl.CONTAINER} image")
    cfg, out, _ = written
    cmd = nemo_rl.command(
        "dpo",
        os.path.join(out, "dpo.yaml"),
        [
            "dpo.max_num_steps=2",
            "cluster.gpus_per_node=1",
            f"policy.model_name={tiny_model_dir}",
            f"policy.tokenizer.name={tiny_model_dir}",
        ],
    )
    subprocess.run(
        [
            "docker",
            "run",
            "--gpus",
            "all",
            "--rm",
            "-v",
            f"{out}:{out}",
            "-v",
            f"{tiny_model_dir}:{tiny_model_dir}",
            nemo_rl.CONTAINER,
            "bash",
            "-c",
            f"cd {nemo_rl.NEMO_RL_DIR} && {shlex.join(cmd)}",
        ],
        check=True,
    )
