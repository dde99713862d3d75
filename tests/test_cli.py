"""Every user-facing entry answers a user mistake with one `error:` line and a non-zero exit."""

import json
import os

import pytest

from tests.conftest import run_cli


def assert_one_clear_error(proc, fragment):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert fragment in errors[0], errors[0]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["run", "pipeline", "preset=huge"], "unknown preset 'huge'"),
        (["run", "pipeline", "preset=ci", "pretrain.stepz=3"], "unknown override key 'pretrain.stepz'"),
        (["run", "pipeline", "preset=ci", "pretrain.steps=lots"], "expected a value of type int"),
        (["run", "nosuch", "preset=ci"], "unknown recipe 'nosuch'"),
        (["run", "pipeline", "preset=ci", "run.executor=k8s"], "run.executor='k8s': choose local, slurm, docker"),
        (
            ["run", "--dryrun", "pretrain", "preset=ci", "pretrain.fp8=fp4"],
            "pretrain.fp8='fp4': choose '' (off), hybrid, e4m3",
        ),
        (["stage", "pretrain", "preset=ci", "pretrain.seq_len=4096"], "exceeds model.max_seq_len"),
        (["config", "preset=ci", "model.hidden=3"], "unknown override key 'model.hidden'"),
        # config mistakes are refused before a dry run or a cluster submission too, not only local runs
        (["run", "--dryrun", "pretrain", "preset=ci", "pretrain.attention=flash"], "choose auto, eager, sdpa"),
        (
            ["run", "--dryrun", "pretrain", "preset=1b", "run.executor=slurm", "pretrain.loss_chunk=-1"],
            "pretrain.loss_chunk=-1",
        ),
        (["run", "--dryrun", "pretrain", "preset=ci", "pretrain.checkpoint_every=0"], "exports its last checkpoint"),
        (
            ["run", "--dryrun", "finetune", "preset=ci", 'finetune.tasks=["nsmc", "kmmlu"]'],
            "'kmmlu' is not one of nsmc, klue_nli, hate",
        ),
        (
            ["run", "--dryrun", "finetune", "preset=ci", "finetune.method=bitfit"],
            "finetune.method='bitfit': choose full, lora, dora, waveft, prompt_tuning, qlora, ia3",
        ),
        (
            ["run", "--dryrun", "pretrain", "preset=1b", "pretrain.micro_batch_size=3"],
            "must divide the 32 rows each of the 8 data-parallel ranks gets",
        ),
    ],
)
def test_bad_arguments(args, fragment, tmp_path):
    assert_one_clear_error(run_cli(args + [f"run.root={tmp_path}"] if args[0] != "config" else args), fragment)


def test_overrides_after_the_config_option_apply(tmp_path):
    """`kollm stage NAME --config run/config.json section.key=value`: the file, then the overrides."""
    config_file = tmp_path / "config.json"
    config_file.write_text(run_cli(["config", "preset=ci", f"run.root={tmp_path}"]).stdout)
    proc = run_cli(["stage", "pretrain", "--config", str(config_file), "pretrain.seq_len=4096"])
    assert_one_clear_error(proc, "pretrain.seq_len=4096 exceeds model.max_seq_len=128")
    bogus = run_cli(["stage", "pretrain", "--config", str(config_file), "--bogus"])  # argparse's own usage error
    assert (
        bogus.returncode == 2 and "unrecognized arguments: --bogus" in bogus.stderr and "Traceback" not in bogus.stderr
    )


def test_missing_data_dir(tmp_path):
    proc = run_cli(["run", "pipeline", "preset=ci", f"run.root={tmp_path}", f"data.data_dir={tmp_path}/nope"])
    assert_one_clear_error(proc, "no Korean data found")
    assert "kollm data download" in proc.stderr


def test_malformed_jsonl_for_evaluation(tmp_path):
    bad = tmp_path / "reviews.jsonl"
    good = {"review_id": 1, "movie_id": 2, "rating": 10, "text": "최고"}
    bad.write_text(json.dumps(good, ensure_ascii=False) + "\n{not json\n")
    proc = run_cli(["run", "evaluate", "preset=ci", f"run.root={tmp_path}", f"evaluate.nsmc_path={bad}"])
    assert_one_clear_error(proc, f"{bad}:2: malformed JSON line")


def test_jsonl_missing_fields_for_evaluation(tmp_path):
    bad = tmp_path / "reviews.jsonl"
    bad.write_text(json.dumps({"text": "최고", "rating": 10}, ensure_ascii=False) + "\n")
    proc = run_cli(["stage", "evaluate", "preset=ci", f"run.root={tmp_path}", f"evaluate.nsmc_path={bad}"])
    assert_one_clear_error(proc, f"{bad}:1: missing field(s) review_id, movie_id")


@pytest.fixture
def weightless_model(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def test_evaluate_refuses_bad_inputs_in_one_line(tmp_path, weightless_model, tiny_model_dir):
    assert_one_clear_error(run_cli(["evaluate", str(tmp_path / "absent")]), "no such model folder")
    assert_one_clear_error(run_cli(["evaluate", str(weightless_model)]), "has a config.json but no weights")
    assert_one_clear_error(
        run_cli(["evaluate", tiny_model_dir, "--adapter", str(weightless_model)]), "not a PEFT adapter folder"
    )
    assert_one_clear_error(run_cli(["evaluate", tiny_model_dir, "--tasks", "kobest"]), "unknown task 'kobest'")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("")
    assert_one_clear_error(
        run_cli(["evaluate", tiny_model_dir, "--tasks", "hate", "--data", str(rows)]), "no rows for task hate"
    )
    rows.write_text(json.dumps({"comments": "댓글", "hate": "none"}, ensure_ascii=False) + "\n")
    assert_one_clear_error(
        run_cli(["evaluate", tiny_model_dir, "--tasks", "hate", "--data", str(rows)]), "lacks the column 'text'"
    )
    assert_one_clear_error(
        run_cli(["evaluate", tiny_model_dir, "--tasks", "hate", "nsmc", "--data", str(rows)]),
        "--data holds one task's rows",
    )


def test_evaluate_scores_a_users_rows(tmp_path, tiny_model_dir):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n"
            for t, y in [("최고의 영화", 1), ("최악의 영화", 0), ("또 보고 싶다", 1)]
        )
    )
    proc = run_cli(["evaluate", tiny_model_dir, "--tasks", "nsmc", "--data", str(rows), "--out", str(tmp_path / "ev")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.load(open(tmp_path / "ev" / "scores.json"))
    assert report["rows"] == {"nsmc": 3} and report["scores"]["nsmc"]["acc"] in (0, 1 / 3, 2 / 3, 1)
    assert report["lm_eval_command"].startswith("lm_eval --model hf")


@pytest.fixture
def finished_run(tmp_path, weightless_model):
    """A run folder as the runner leaves it, without the training: align complete (its manifest's model_dir
    a model folder without weights), finetune complete with `full` and the `cls` head (a classifier, no
    adapter), pretrain started but not complete."""
    run = tmp_path / "runs" / "ci"
    classifier = run / "finetune" / "nsmc" / "model"
    classifier.mkdir(parents=True)
    (classifier / "config.json").write_text(json.dumps({"architectures": ["LlamaForSequenceClassification"]}))
    (classifier / "model.safetensors").write_bytes(b"")
    results = run / "finetune" / "results.json"
    results.write_text(
        json.dumps(
            {
                "method": "full",
                "head": "cls",
                "backend": "hf",
                "tasks": [{"task": "nsmc", "adapter_dir": None, "model_dir": str(classifier)}],
            }
        )
    )
    (run / "align").mkdir()
    for stage, outputs in (("align", {"model_dir": str(weightless_model)}), ("finetune", {"results": str(results)})):
        (run / stage / "manifest.json").write_text(
            json.dumps({"stage": stage, "status": "complete", "outputs": outputs})
        )
    (run / "pretrain").mkdir()
    (run / "pretrain" / "manifest.json").write_text(json.dumps({"stage": "pretrain", "status": "running"}))
    return run


def test_evaluate_reads_a_stage_folder_and_names_what_makes_a_missing_input(finished_run, weightless_model, capsys):
    """A stage folder stands for the model its manifest declares; a path in a run that is not there, or that
    lm-eval cannot score, is one error line naming the stage or setting that makes it."""
    from recipes import cli

    run, root = finished_run, finished_run.parent

    def error(*args):
        assert cli.main(["evaluate", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        return err[0]

    # the align folder is its manifest's model (here one without weights, which is the error that follows)
    assert (
        error(str(run / "align"))
        == f"error: {weightless_model}: the folder has a config.json but no weights (*.safetensors)"
    )
    assert f"the align stage's manifest declares its model at {weightless_model}" in error(str(run / "align" / "model"))
    assert f"`kollm run pretrain preset=ci run.root={root}`" in error(str(run / "pretrain"))
    missing = error(str(run / "align"), "--adapter", str(run / "finetune" / "nsmc" / "adapter"))
    assert "no adapter" in missing and "finetune.method=full, finetune.head=cls" in missing
    assert f"`kollm run finetune preset=ci run.root={root} finetune.method=lora finetune.head=lm`" in missing
    assert """'finetune.tasks=["nsmc","hate"]'`""" in error(
        str(run / "align"), "--adapter", str(run / "finetune" / "hate" / "adapter")
    )
    assert "a classification model (LlamaForSequenceClassification, finetune.head=cls)" in error(
        str(run / "finetune" / "nsmc" / "model")
    )
    assert "a classification model" in error(str(run / "finetune"), "--tasks", "nsmc")  # the task's model
    assert "`kollm run pipeline preset=tiny run.root=" in error(str(root.parent / "elsewhere" / "tiny" / "align"))


def test_automodel_backend_without_its_environment(tmp_path):
    proc = run_cli(
        [
            "run",
            "finetune",
            "preset=ci",
            f"run.root={tmp_path}",
            "finetune.backend=automodel",
            "finetune.method=lora",
            "finetune.head=lm",
            f"finetune.automodel_python={tmp_path}/none/python",
        ]
    )
    assert_one_clear_error(proc, "make env-automodel")
    proc = run_cli(
        [
            "run",
            "finetune",
            "preset=ci",
            f"run.root={tmp_path}",
            "finetune.backend=automodel",
            "finetune.method=waveft",
            "finetune.head=lm",
        ]
    )
    assert_one_clear_error(proc, "runs lora and dora with the lm head")


def test_stage_before_its_inputs_exist(tmp_path):
    proc = run_cli(["stage", "pretrain", "preset=ci", f"run.root={tmp_path}"])
    assert_one_clear_error(proc, "stage 'curate' has not completed")


def test_download_from_unreachable_mirror(tmp_path):
    proc = run_cli(["data", "download", "--mirror", "http://127.0.0.1:9", "--dest", str(tmp_path)])
    assert_one_clear_error(proc, "download failed")


def test_help_explains_the_commands():
    proc = run_cli(["--help"])
    assert proc.returncode == 0
    for word in ("run", "stage", "data", "preset", "section.key=value"):
        assert word in proc.stdout
    proc = run_cli(["run", "--help"])
    assert "pipeline" in proc.stdout and "--dryrun" in proc.stdout


def test_kollm_chat_on_a_local_folder_keeps_the_history_and_resets_it(tiny_model_dir):
    import subprocess
    import sys

    from kollm.curation.korean import is_hangul
    from tests.conftest import REPO

    proc = subprocess.run(
        [sys.executable, "-m", "recipes.cli", "chat", "--model-dir", tiny_model_dir, "--max-tokens", "12"],
        input="안녕하세요\n영화 리뷰를 써 주세요.\n/reset\n좋아요\n",
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 4 and "history cleared" in lines[2], lines  # three answers and the reset notice
    answers = [lines[0], lines[1], lines[3]]
    # a 200-step fixture model's 12 greedy tokens are not always Hangul (one full suite run answered without any),
    # but the stream never breaks a syllable
    assert all(a.strip() and "\ufffd" not in a for a in answers) and any(any(map(is_hangul, a)) for a in answers), lines
    missing = subprocess.run(
        [sys.executable, "-m", "recipes.cli", "chat", "--model-dir", "/nonexistent"],
        input="",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("error: /nonexistent is not a HF model folder")


def test_kollm_chat_edits_the_line_with_arrow_keys_and_recalls_history(tiny_model_dir):
    """In a real terminal (tmux), arrow keys move the cursor inside the message and Up recalls the last one, as
    in any readline prompt; without readline the terminal would hand the model `^[[D`."""
    import shutil
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    if not shutil.which("tmux"):
        pytest.skip("no tmux (tests/install_browser.sh installs it with apt)")
    session = f"kollm-chat-{os.getpid()}"

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

    def wait_for(predicate, what: str, timeout_s: float = 60) -> str:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            shown = screen()
            if predicate(shown):
                return shown
            time.sleep(0.2)
        raise AssertionError(f"never saw {what}:\n{screen()}")

    def keys(*k):
        subprocess.run(["tmux", "send-keys", "-t", session, *k], check=True)

    command = f"{sys.executable} -m recipes.cli chat --model-dir {tiny_model_dir} --max-tokens 4; sleep 30"
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "150",
            "-y",
            "30",
            "-c",
            REPO,
            "env",
            "LANG=C.UTF-8",
            "bash",
            "-c",
            command,
        ],
        check=True,
    )
    try:
        wait_for(lambda s: "나>" in s, "the prompt")
        keys("-l", "abc")
        keys("Left", "Left")
        keys("-l", "X")
        shown = wait_for(lambda s: "나> aXbc" in s, "the edited line")
        assert "^[[" not in shown
        keys("Enter")
        wait_for(lambda s: s.count("나>") == 2, "an answer and the next prompt")
        keys("Up")
        wait_for(lambda s: s.rstrip().endswith("나> aXbc"), "the last message recalled by Up")
        keys("C-u", "/exit", "Enter")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
